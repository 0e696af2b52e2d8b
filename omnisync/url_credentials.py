"""Credentials in URLs (``user:pass@`` in the authority): found, taken out, or hidden as ``***@``
for a message or a report, with or without a scheme, in any case, with surrounding blanks."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import unquote

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


#: a password shorter than this is hidden only within ``user:pass``: hiding every "ab" of a
#: message would leave nothing readable, and so short a one guards nothing anyway
SHORTEST_HIDDEN = 4


def userinfo_hidden(text: str, url: str) -> str:
    """``text`` (a message that may quote ``url``) with ``url`` as :func:`without_userinfo`
    shows it, and its ``user:pass`` and its password alone wherever else they appear as ``***``,
    as written in the URL and percent-decoded (a library's message may quote either: s3fs and
    botocore decode the URL before they use it)."""
    secret = userinfo(url)
    text = text.replace(url, without_userinfo(url))
    if not secret:
        return text
    password = secret.partition(":")[2]
    pieces = {secret, unquote(secret)}
    if len(unquote(password)) >= SHORTEST_HIDDEN:
        pieces |= {password, unquote(password)}
    for piece in sorted(pieces, key=len, reverse=True):  # the longest first: no half left
        if piece:
            text = text.replace(piece, "***")
    return text


def userinfo_hidden_in(exc: OSError, url: str) -> None:
    """``exc`` changed in place: ``url``'s ``user:pass`` hidden in the text an OSError keeps (its
    string args, strerror, file names and notes), and its chained errors no longer shown (they
    may quote it too). Not rebuilt: its class, errno and traceback stay, and a subclass's
    constructor may take other arguments than OSError's. A class that builds its message in its
    own ``__str__`` from other attributes is beyond reach; one whose attribute is read-only keeps
    that attribute."""
    exc.args = tuple(userinfo_hidden(a, url) if isinstance(a, str) else a for a in exc.args)
    for name in ("strerror", "filename", "filename2"):
        value = getattr(exc, name, None)
        if isinstance(value, str):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, name, userinfo_hidden(value, url))
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        exc.__notes__ = [userinfo_hidden(n, url) if isinstance(n, str) else n for n in notes]
    exc.__cause__, exc.__suppress_context__ = None, True


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def database_url_shown(url: str) -> str:
    """A SQLAlchemy URL as a message may show it: without its password (read as SQLAlchemy reads
    it, so a ``/``, ``?`` or ``#`` in it is no end; and a host that holds an ``@``, left by a
    password with an unencoded one, is cut after its last), and with the values of its query
    masked (a driver takes ``?password=`` or a key's passphrase there); an unparseable one as
    its scheme alone, or not at all when it has no plain scheme (any part may be a password)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        if parsed.host and "@" in parsed.host:
            parsed = parsed.set(host=parsed.host.rsplit("@", 1)[1])
        shown = parsed.set(query={}).render_as_string(hide_password=True)
    except Exception:  # any parse error: the URL's pieces are unknown
        scheme, sep, _ = url.strip().partition("://")
        return f"{scheme}://..." if sep and _SCHEME.fullmatch(scheme) else "(not a database URL)"
    if not parsed.query:
        return shown
    return f"{shown}?{'&'.join(f'{key}=***' for key in parsed.query)}"


def without_url_pieces(text: str, url: str) -> str:
    """``text`` (a driver's error) with ``url``, its password and every piece of it, and its
    query's values removed: an error about a malformed URL may quote any of them (a password
    with an unencoded ``@`` or ``:`` is split where a parser did not expect). The user and the
    host are kept: they are no secret, and masking them would garble ordinary words."""
    from sqlalchemy.engine import make_url

    credentials = userinfo(url) or ""
    passwords = {credentials.partition(":")[2]}
    # As SQLAlchemy reads it: a "/", "?" or "#" in a password ends no authority there, and a
    # host holding an "@" holds the rest of a password with an unencoded one. Unparseable: the
    # pieces above are all there is to go on.
    with contextlib.suppress(Exception):
        parsed = make_url(url)
        host = parsed.host or ""
        passwords.add(parsed.password or "")
        if "@" in host:
            passwords.add(f"{parsed.password or ''}@{host.rsplit('@', 1)[0]}")
    values = [part.partition("=")[2] for part in url.partition("?")[2].split("&")]
    pieces = {url, url.strip(), *passwords, *values}
    if ":" in credentials:  # a user alone is no secret (and "postgres" is in "postgresql")
        pieces.add(credentials)
    for password in passwords:
        pieces.update(password.replace("@", ":").split(":"))
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "...")
    return text
