"""The retry layer's decisions: which failures are tried again (any transient one for a read, only
an unsent one for a write), how long a ``Retry-After`` may hold a run, and the budget a caller
uses when it must look before it sends a write again (after ``AnswerLost``)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import httpx

from omnisync.client.errors import ConfigurationError, Retriable
from omnisync.client.redaction import Redactor
from omnisync.client.tls import (
    certificate_refused,
    connect_failure,
    speaks_plain_http,
    unknown_host,
)

log = logging.getLogger("omnisync.client")

# A Retry-After larger than this is capped: the run's own retry budget decides when to give up.
MAX_RETRY_AFTER_SECONDS = 60.0
# Jitter from a generator of its own: a write-back thread drawing from the process-wide one
# changes its state under anyone who seeded it (a property test's strategies among them).
_JITTER = random.Random()
# Methods sent again freely after any transient failure: they change nothing on the server.
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class RetryBudget:
    """Attempts and time left for one write, with the client's backoff between attempts."""

    def __init__(
        self, attempts: int, seconds: float, initial: float, maximum: float, jitter: float
    ) -> None:
        self.left = attempts - 1  # the first attempt is not a retry
        self._deadline = time.monotonic() + seconds
        self._wait = (initial, maximum, jitter)
        self._retries = 0

    def another(self) -> bool:
        """Wait the backoff, then True; False (at once) when the budget is spent."""
        initial, maximum, jitter = self._wait
        pause = min(maximum, initial * 2**self._retries) + _JITTER.uniform(0, jitter)
        if self.left <= 0 or time.monotonic() + pause > self._deadline:
            return False
        self.left -= 1
        self._retries += 1
        time.sleep(pause)
        return True


def transport_failure(exc: httpx.HTTPError, where: str, checking: bool = False) -> Exception:
    """What a request that got no answer raises: a certificate refused, or a server that does
    not speak TLS, is configuration (not retried); so is a host name that does not exist while
    a command is ``checking`` the address (its preflight, before Omnitron first answered: a
    mistyped ``OMNITRON_URL`` is said at once, not after the retries; later, as on a worker's
    or a write-back's own client, a name server's passing fault is retried); a connection never
    made is retried even for a write, since nothing was sent; a timeout or a broken connection
    once sent may have reached the server."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        refused = certificate_refused(exc) or speaks_plain_http(exc)
        if refused is None and checking and unknown_host(exc):
            refused = connect_failure(exc)
        if refused is not None:  # nothing was sent: a write was not applied
            return ConfigurationError(f"{where}: {refused}", unsent=True)
        return Retriable(f"{where} failed to connect: {connect_failure(exc)}", unsent=True)
    if isinstance(exc, httpx.TimeoutException):
        return Retriable(f"{where} timed out")
    if isinstance(exc, httpx.DecodingError):
        return Retriable(f"{where} answered a body that cannot be decoded: {exc}")
    return Retriable(f"{where} failed: {type(exc).__name__}: {exc}")


def retry_policy(
    method: str, redact: Redactor, attempts_left: Callable[[], bool]
) -> Callable[[Exception], bool | float]:
    """What stamina does after ``exc`` for a request by ``method``: retry a read after any
    transient failure, a write only when it was never sent; wait a capped ``Retry-After``.
    stamina asks after the last attempt too: "retrying" is said only when ``attempts_left()``."""
    read = method in READS

    def backoff(exc: Exception) -> bool | float:
        if not isinstance(exc, Retriable) or not (read or exc.unsent):
            return False
        if attempts_left():
            log.warning("%s; retrying", redact(str(exc)))
        if exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER_SECONDS)
        return True

    return backoff
