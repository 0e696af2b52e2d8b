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
    """A SQLAlchemy URL as a message may show it: its user and password as ``***@`` (split at the
    authority's last ``@``: a password may hold an unencoded one, where SQLAlchemy splits at the
    first), and the values of its query masked (a driver takes ``?password=`` or a key's
    passphrase there); an unparseable one as its scheme alone, or not at all when it has no
    plain scheme (any part may then be a password)."""
    from sqlalchemy.engine import make_url

    try:
        make_url(url)
    except Exception:  # any parse error: the URL's pieces are unknown
        scheme, sep, _ = url.strip().partition("://")
        return f"{scheme}://..." if sep and _SCHEME.fullmatch(scheme) else "(not a database URL)"
    base, sep, query = without_userinfo(url.strip()).partition("?")
    if not sep:
        return base
    keys = [part.partition("=")[0] for part in query.split("&") if part]
    return f"{base}?{'&'.join(f'{key}=***' for key in keys)}"


def without_url_pieces(text: str, url: str) -> str:
    """``text`` (a driver's error) with ``url``, its password and every piece of it, and its
    query's values removed: an error about a malformed URL may quote any of them (a password
    with an unencoded ``@`` or ``:`` is split where a parser did not expect). The user and the
    host are kept: they are no secret, and masking them would garble ordinary words."""
    credentials = userinfo(url) or ""
    password = credentials.partition(":")[2]
    values = [part.partition("=")[2] for part in url.partition("?")[2].split("&")]
    pieces = {url, url.strip(), credentials, password, *values}
    pieces.update(password.replace("@", ":").split(":"))
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "...")
    return text
