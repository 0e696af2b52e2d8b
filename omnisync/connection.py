"""How a run reaches Omnitron: the client configured by the run's settings.

The client takes its options as arguments and knows nothing of ``Settings``; this is the one
place that maps settings to those options, for the sync, the write-back and ``verify`` alike.
"""

from __future__ import annotations

from typing import Any

from omnisync.client import ConfigurationError, OmnitronClient
from omnisync.settings import Settings


def open_client(settings: Settings, **overrides: Any) -> OmnitronClient:
    """A client configured by ``settings`` (``overrides`` replace single options, e.g. a
    shorter retry budget). Raises ConfigurationError if OMNITRON_URL is unset."""
    if not settings.omnitron_url:
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
    return OmnitronClient(settings.omnitron_url, **options)
