"""TLS for the client: one context per process and trust setting, and a certificate that cannot
be verified told apart from a network that failed.

Building a context reads the whole CA bundle (tens of milliseconds of CPU), and a run makes a
client per step and per window thread: they share one. httpx reads ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` when it builds a context, so both are part of the key.
"""

from __future__ import annotations

import functools
import os
import ssl

import httpx


def tls_context(verify: bool) -> ssl.SSLContext:
    """The process's context for ``verify`` (False only for a test server: no certificate is
    checked) under the CA bundle the environment names now."""
    return _context(verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=8)
def _context(verify: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=verify)


def certificate_refused(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind ``exc`` (httpx wraps it in a ``ConnectError``), if any: it
    will not mend by waiting, so it is not retried."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # a chain set by hand can loop
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
