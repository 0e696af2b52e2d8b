"""Links into the lake for people who read a run's summary in the Prefect UI.

A browser opened from the Prefect UI cannot follow a local path, so a link is only made where
``OMNISYNC_LAKE_BROWSE_URL`` says at which http(s) address the lake's reports are served (for
example ``python -m http.server -d <lake>``, or an S3 bucket's web address); otherwise the
summary gives the path, to be copied.
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from omnisync.settings import Settings
from omnisync.url_credentials import without_userinfo


def lake_link(settings: Settings, relative: str, label: str) -> str:
    """Markdown for one file of the lake: a link, or its path as code."""
    if settings.lake_browse_url:
        return f"[{label}]({settings.lake_browse_url}/{quote(relative)})"
    return f"{label}: `{posixpath.join(without_userinfo(settings.lake), relative)}`"
