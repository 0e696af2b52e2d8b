"""Fault injection for ``/api/`` requests, as a pure ASGI middleware.

Faults come from a queue (``POST /_sandbox/faults/next``, deterministic, for tests) or at random at
the configured rate. A ``drop`` starts a response and closes the connection half-way, which the
client sees as a broken connection, not as an HTTP status.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.modes import FaultKind, FaultModes

_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class FaultInjector:
    def __init__(self, modes: FaultModes) -> None:
        self.modes = modes
        self.queue: deque[FaultKind] = deque()
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(modes.seed)

    def reconfigure(self, modes: FaultModes) -> None:
        self.modes = modes
        self._rng = random.Random(modes.seed)

    def next_fault(self) -> FaultKind | None:
        if self.queue:
            return self.queue.popleft()
        if self.modes.rate and self.modes.kinds and self._rng.random() < self.modes.rate:
            return self._rng.choice(self.modes.kinds)
        return None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FaultMiddleware:
    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        kind = self.injector.next_fault()
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.injector.injected[kind] += 1
        modes = self.injector.modes
        retry_after = str(modes.retry_after_seconds).encode()
        json_type = (b"content-type", b"application/json")
        if kind == "slow":
            await asyncio.sleep(modes.slow_seconds)
            await self.app(scope, receive, send)
        elif kind == "429":
            seconds = modes.retry_after_seconds
            body = b'{"detail":"Request was throttled. Expected available in %d second%s."}' % (
                seconds,
                b"" if seconds == 1 else b"s",
            )
            await _respond(send, 429, body, [json_type, (b"retry-after", retry_after)])
        elif kind == "500":
            await _respond(send, 500, b'{"detail":"A server error occurred."}', [json_type])
        elif kind == "502":
            await _respond(send, 502, _HTML_502, [(b"content-type", b"text/html")])
        elif kind == "503":
            await _respond(
                send,
                503,
                b"Service Unavailable",
                [(b"content-type", b"text/plain"), (b"retry-after", retry_after)],
            )
        elif kind == "drop":
            # Promise a body, send part of it, then return: the server closes the connection.
            start: dict[str, Any] = {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"4096"), json_type],
            }
            await send(start)
            await send({"type": "http.response.body", "body": b'{"count": ', "more_body": True})
