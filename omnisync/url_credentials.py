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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def database_url_shown(url: str) -> str:
    """A SQLAlchemy URL as a message may show it: without its password, and with the values of its
    query masked (a driver takes ``?password=`` or a key file's passphrase there, which SQLAlchemy
    would show); an unparseable one as its scheme alone, or not at all when it has no plain scheme
    (any part may then be a password)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        if parsed.query:
            masked = "&".join(f"{key}=***" for key in parsed.query)
            shown = f"{shown.split('?', 1)[0]}?{masked}"
        return shown
    except Exception:  # any parse error: the URL's pieces are unknown
        scheme, sep, _ = url.strip().partition("://")
        return f"{scheme}://..." if sep and _SCHEME.fullmatch(scheme) else "(not a database URL)"
