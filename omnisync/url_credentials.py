"""Credentials in URLs (``user:pass@`` in the authority): found, taken out, or hidden as ``***@``
for a message or a report, with or without a scheme, in any case, with surrounding blanks."""

from __future__ import annotations

import re

_AUTHORITY = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*://|//)?(?P<authority>[^/?#]*)")


def carries_userinfo(url: str) -> bool:
    """Whether ``url`` has an ``@`` in its authority (``user:pass@host``), with or without a
    scheme, in any case, with surrounding blanks: the first check of any URL setting."""
    match = _AUTHORITY.match(url)
    return bool(match and "@" in match.group("authority"))


def userinfo(url: str) -> str | None:
    """The ``user:pass`` of ``url``'s authority (what :func:`without_userinfo` hides), if any."""
    match = _AUTHORITY.match(url)
    if not match or "@" not in match.group("authority"):
        return None
    return match.group("authority").rsplit("@", 1)[0]


def without_userinfo(url: str) -> str:
    """``url`` as it may be shown in a message or a report: ``user:pass@`` in its authority
    becomes ``***@``; any other URL or path is returned as it is."""
    match = _AUTHORITY.match(url)
    if not match or "@" not in match.group("authority"):
        return url
    authority = match.group("authority")
    start, end = match.span("authority")
    return url[:start] + "***@" + authority.rsplit("@", 1)[1] + url[end:]
