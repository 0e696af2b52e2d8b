"""The Prefect API a command reports its runs to, checked before any run starts.

Without the check, an unreachable or unauthorised API fails deep inside Prefect's engine, after
its client's retries, with a traceback of a hundred lines. A wrong ``PREFECT_API_URL`` (or key)
is a setting to fix: one line naming it, exit code 2.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from omnisync.settings import SettingsError


def configured_prefect_api() -> str | None:
    """The Prefect API this command reports its runs to, or None to run them in this process;
    raises SettingsError when it does not answer this client.

    Prefect reads its settings from the environment, the active profile, ``prefect.toml`` and
    ``.env``; importing it costs about a second, so it is asked only when one of those could
    name an API."""
    api = os.environ.get("PREFECT_API_URL") or None
    if api is None:
        home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
        places = (home / "profiles.toml", Path("prefect.toml"), Path(".env"))
        if not any(place.is_file() for place in places):
            return None
        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value() or None
    if api is not None:
        check_prefect_api(api)
    return api


def shown_api_url(url: str) -> str:
    """``url`` without any ``user:pass@``, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def is_prefect_cloud(url: str) -> bool:
    """Whether ``url`` is a Prefect Cloud workspace (``api.prefect.cloud``, or a path
    ``/api/accounts/<id>/workspaces/<id>``), where ``/admin/version`` is not served."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    return host.endswith("prefect.cloud") or bool(_WORKSPACE.search(parts.path))


_WORKSPACE = re.compile(r"/accounts/[^/]+/workspaces/[^/]+/?$")
#: statuses of an API that is there but not ready (starting, overloaded): asked once more
NOT_READY = frozenset({429, 500, 502, 503, 504})


def check_prefect_api(url: str) -> None:
    """Return when the Prefect API at ``url`` answers this client; raise SettingsError naming
    ``PREFECT_API_URL`` (unreachable, not ready, not a Prefect API) or its credentials
    (401/403).

    The request is an authenticated one (``/health`` is open to anyone): ``/admin/version`` on
    a Prefect server, a one-flow listing on Prefect Cloud, which does not serve the former. A
    429 or 5xx is asked once more, then reported as "not ready", not as a wrong URL."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    shown = shown_api_url(url)
    for attempt in range(2):
        try:
            _ask(url)
            return
        except PrefectHTTPStatusError as exc:
            code = exc.response.status_code
            if code in NOT_READY:
                if attempt == 0:
                    continue
                raise SettingsError(
                    f"PREFECT_API_URL {shown} is not ready (answered {code} twice): try again "
                    "shortly, or check the Prefect server"
                ) from None
            if code in (401, 403):
                raise SettingsError(
                    f"PREFECT_API_URL {shown} refused this client ({code}): check "
                    "PREFECT_API_KEY or PREFECT_API_AUTH_STRING"
                ) from None
            raise SettingsError(
                f"PREFECT_API_URL {shown} answered {code}: is it a Prefect API (ending in /api)?"
            ) from None
        except (httpx.HTTPError, OSError) as exc:
            raise SettingsError(
                f"PREFECT_API_URL {shown} is unreachable ({type(exc).__name__}): start the "
                "Prefect server, fix the setting, or unset it to run in this process"
            ) from None
        except ValueError:  # a body that is not a version: something else answers there
            raise SettingsError(
                f"PREFECT_API_URL {shown} did not answer as a Prefect API (ending in /api)"
            ) from None


def _ask(url: str) -> None:
    """One authenticated request to the API at ``url``; raises what Prefect's client raises."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    # One attempt per call: the caller decides what is worth asking again.
    with (
        temporary_settings({PREFECT_API_URL: url, PREFECT_CLIENT_MAX_RETRIES: 0}),
        get_client(sync_client=True) as client,
    ):
        if is_prefect_cloud(url):
            client.read_flows(limit=1)
        else:
            client.api_version()
