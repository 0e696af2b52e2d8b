"""TLS for the client: one context per process and trust setting, and why a connection failed: a
certificate that cannot be verified, a wrong scheme, a closed port or an unknown host.

Building a context reads the whole CA bundle (its cost is in docs/performance.md), and a run
makes a client per step and per window thread: they share one, built as httpx would build it (from
``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's bundle; both are part of the key).
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
from collections.abc import Iterable, Iterator

import certifi


def tls_context(verify: bool) -> ssl.SSLContext:
    """The process's context for ``verify`` (False only for a test server: no certificate is
    checked) under the CA bundle the environment names now."""
    return _context(verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


class _SharedContext(ssl.SSLContext):
    """httpcore sets the ALPN protocols on the context before every connection. On a context
    that threads share, that frees a buffer another thread's handshake may be copying (in C,
    without the GIL): they are set once, before the context is shared, and the same protocols
    asked again change nothing."""

    _alpn: list[str] | None = None

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        wanted = list(alpn_protocols)
        if wanted != self._alpn:
            super().set_alpn_protocols(wanted)
            self._alpn = wanted


@functools.lru_cache(maxsize=8)
def _context(verify: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # what httpx.create_ssl_context builds, as a _SharedContext
    context = _SharedContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the certificate and the host name
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cert_file:
        context.load_verify_locations(cafile=cert_file)
    elif cert_dir:
        context.load_verify_locations(capath=cert_dir)
    else:
        context.load_verify_locations(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])  # the clients speak HTTP/1.1 only
    return context


#: OpenSSL's verify codes whose remedy is the server's certificate or the URL, not a CA bundle
_EXPIRED, _HOSTNAME_MISMATCH = 10, 62


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or while handling (httpcore raises its ConnectError
    while handling the socket's or OpenSSL's error)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # a chain set by hand can loop
        yield cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


def certificate_refused(exc: BaseException) -> str | None:
    """What is wrong with the server's certificate and what to do, when a certificate error is
    behind ``exc`` (httpx wraps it in a ``ConnectError``): it will not mend by waiting, so it is
    not retried. None when there is no such error."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _advice(cause)
    return None


#: OpenSSL's reasons for a first answer that is not TLS at all: a plain-HTTP server
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"})


def speaks_plain_http(exc: BaseException) -> str | None:
    """What to do when the server answered the TLS handshake with something that is not TLS
    (``https://`` to a port that speaks plain HTTP): no wait mends it. None otherwise."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLError) and cause.reason in _NOT_TLS:
            return (
                f"the server does not speak TLS on that port ({cause.reason}): if it serves "
                "plain HTTP, OMNITRON_URL must start with http://"
            )
    return None


def connect_failure(exc: BaseException) -> str:
    """Why no connection was made, in words that say what to check: each of these may also pass
    (a server restarting, a name server's hiccup), so they are retried, except a host name that
    does not exist before the server ever answered (:func:`unknown_host`)."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, socket.gaierror):
            if cause.errno == socket.EAI_NONAME:
                return "the host name does not exist (check OMNITRON_URL)"
            return "the host name could not be resolved (check OMNITRON_URL)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused: nothing listens on that port (check OMNITRON_URL)"
    return type(exc).__name__


def unknown_host(exc: BaseException) -> bool:
    """Whether the name server said the host name does not exist (``EAI_NONAME``), not that it
    could not answer now (``EAI_AGAIN``, a hiccup that passes)."""
    return any(
        isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME
        for cause in _chain(exc)
    )


def _advice(error: ssl.SSLCertVerificationError) -> str:
    reason = getattr(error, "verify_message", None) or str(error)
    code = getattr(error, "verify_code", None)
    if code == _HOSTNAME_MISMATCH:
        remedy = "it names another host: check OMNITRON_URL, or have the certificate fixed"
    elif code == _EXPIRED:
        remedy = "it has expired: the server's certificate must be renewed"
    else:
        remedy = (
            "set SSL_CERT_FILE to the CA bundle that signed it (OMNISYNC_VERIFY_TLS=false turns "
            "checking off, for a test server only)"
        )
    return f"the server's TLS certificate cannot be verified ({reason}): {remedy}"
