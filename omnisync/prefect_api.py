"""The Prefect API a command reports its runs to, checked before any run starts.

Without the check, an unreachable or unauthorised API fails deep inside Prefect's engine, after
its client's retries, with a traceback of a hundred lines. A wrong ``PREFECT_API_URL`` (or key)
is a setting to fix: one line naming it, exit code 2.
"""

from __future__ import annotations

import urllib.parse

from omnisync.settings import SettingsError


def shown_api_url(url: str) -> str:
    """``url`` without any ``user:pass@``, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def check_prefect_api(url: str) -> None:
    """Return when the Prefect API at ``url`` answers this client; raise SettingsError naming
    ``PREFECT_API_URL`` (unreachable, not a Prefect API) or its credentials (401/403)."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    shown = shown_api_url(url)
    try:
        # One attempt: a run's own requests retry; a check that waits is only a slower refusal.
        with (
            temporary_settings({PREFECT_API_URL: url, PREFECT_CLIENT_MAX_RETRIES: 0}),
            get_client(sync_client=True) as client,
        ):
            client.api_version()  # an authenticated request (/health is open to anyone)
    except PrefectHTTPStatusError as exc:
        code = exc.response.status_code
        if code in (401, 403):
            raise SettingsError(
                f"PREFECT_API_URL {shown} refused this client ({code}): check PREFECT_API_KEY "
                "or PREFECT_API_AUTH_STRING"
            ) from None
        raise SettingsError(
            f"PREFECT_API_URL {shown} answered {code}: is it a Prefect API (ending in /api)?"
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise SettingsError(
            f"PREFECT_API_URL {shown} is unreachable ({type(exc).__name__}): start the Prefect "
            "server, fix the setting, or unset it to run in this process"
        ) from None
    except ValueError:  # a body that is not a version: something else answers there
        raise SettingsError(
            f"PREFECT_API_URL {shown} did not answer as a Prefect API (ending in /api)"
        ) from None
