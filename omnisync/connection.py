"""How a run reaches Omnitron: the client configured by the run's settings.

The client takes its options as arguments and knows nothing of ``Settings``; this is the one
place that maps settings to those options, for the sync, the write-back and ``verify`` alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from omnisync.client import ConfigurationError, NotFound, OmnitronClient, RetriesExhausted
from omnisync.settings import Settings
from omnisync.url_credentials import without_userinfo

#: the retry budget of a preflight: a person at a terminal wants an unreachable Omnitron named
#: in seconds, not after the run's full budget (the run gets that back once Omnitron answered)
PREFLIGHT_ATTEMPTS = 3
PREFLIGHT_SECONDS = 10.0


def open_client(settings: Settings, **overrides: Any) -> OmnitronClient:
    """A client configured by ``settings`` (``overrides`` replace single options, e.g. a
    shorter retry budget). Raises ConfigurationError if OMNITRON_URL is unset."""
    url = settings.omnitron_url
    if not url:
        raise ConfigurationError("OMNITRON_URL is not set: point it at your Omnitron")
    options: dict[str, Any] = {
        "token": settings.omnitron_token,
        "username": settings.omnitron_username,
        "password": settings.omnitron_password,
        "page_size": settings.page_size,
        "timeout_seconds": settings.timeout_seconds,
        "max_rps": settings.max_rps,
        "concurrency": settings.concurrency,
        "retry_attempts": settings.retry_attempts,
        "retry_max_seconds": settings.retry_max_seconds,
        "verify_tls": settings.verify_tls,
    }
    options.update(overrides)
    return OmnitronClient(url, **options)


@contextlib.contextmanager
def naming_omnitron_url(settings: Settings, client: OmnitronClient) -> Iterator[None]:
    """A failure before Omnitron first answered said as a wrong or unreachable OMNITRON_URL: a
    404 then (a list's first page, or the login) is a setting to fix (ConfigurationError, exit
    2); no answer at all, or only errors, a run to try later. Failures after a first answer
    pass as they are."""
    shown = without_userinfo(settings.omnitron_url or "")
    try:
        yield
    except NotFound as exc:
        if client.answered:
            raise
        raise ConfigurationError(
            f"OMNITRON_URL {shown} is not Omnitron's address: {exc}; give the address the API's "
            "paths follow (https://brand.omnitron.akinon.net, without /api/v1)",
            status=404,
        ) from None
    except RetriesExhausted as exc:
        if client.answered:
            raise
        # an HTTP status is an answer, though an error each time (a server down for maintenance,
        # or a web server that is not Omnitron and refuses the login's POST with 501)
        said = "did not answer" if exc.status is None else "answered only errors"
        budget = client.first_answer_budget
        # beside OMNISYNC_RETRY_ATTEMPTS=8, "gave up after 3 attempts" read as a setting ignored
        why = (
            ""
            if budget is None
            else f" (a command's first request is tried up to {budget[0]} time(s) within "
            f"{budget[1]:g} s; "
            "OMNISYNC_RETRY_ATTEMPTS and OMNISYNC_RETRY_MAX_SECONDS apply once Omnitron has "
            "answered)"
        )
        raise RetriesExhausted(
            f"OMNITRON_URL {shown} {said}: {exc}{why}", status=exc.status
        ) from None


def reach(settings: Settings, **overrides: Any) -> OmnitronClient:
    """A client whose requests retry within the preflight's short budget until Omnitron first
    answers (an unreachable server is named in seconds, a host that does not exist at once),
    then within the full one: the first request of a command is its preflight, at no extra
    request. Use it with :func:`naming_omnitron_url`; ``overrides`` as :func:`open_client`'s."""
    client = open_client(settings, **overrides)
    client.first_answer_budget = (
        min(settings.retry_attempts, PREFLIGHT_ATTEMPTS),
        min(settings.retry_max_seconds, PREFLIGHT_SECONDS),
    )
    return client
