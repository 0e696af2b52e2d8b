"""Fault injection for ``/api/`` requests, as a pure ASGI middleware.

Faults come from a queue (``POST /_sandbox/faults/next``, deterministic, for tests) or at random at
the configured rate. A ``drop`` starts a response and closes the connection half-way, which the
client sees as a broken connection, not as an HTTP status. These faults answer before the request
reaches the API, so nothing was applied.

Lost answers are the other kind: a PATCH that the API applied, whose answer never reaches the
client (a proxy's 502, a reset, a timeout). They come from their own queue
(``POST /_sandbox/lost_answers/next``) or at random (``lost_answers`` modes), and a share of them
is followed at once by a person's edit of the customer, made before the client learns anything.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.modes import FaultKind, FaultModes, LostAnswerKind, LostAnswerModes

_CUSTOMER_PATH = re.compile(r"^/api/v1/customers/(\d+)/$")


@dataclass(frozen=True)
class LostAnswer:
    kind: LostAnswerKind
    edit: bool = False


_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class FaultInjector:
    def __init__(self, modes: FaultModes, lost: LostAnswerModes | None = None) -> None:
        self.modes = modes
        self.lost_modes = lost or LostAnswerModes()
        #: queued faults, each for any method (None) or for the methods named, and for any
        #: path (None) or the one named
        self.queue: deque[tuple[FaultKind, frozenset[str] | None, str | None]] = deque()
        self.lost_queue: deque[LostAnswer] = deque()
        self.injected: Counter[str] = Counter()
        #: pk -> how its applied PATCH's answer was lost, and the person's edits that followed
        self.lost: dict[int, str] = {}
        self.edited: dict[int, str] = {}
        #: set by the app: makes a person's edit of a customer's erp_code, returns the new code
        self.person_edit: Callable[[int], str | None] | None = None
        self._rng = random.Random(modes.seed)
        self._lost_rng = random.Random(self.lost_modes.seed)

    def reconfigure(self, modes: FaultModes, lost: LostAnswerModes | None = None) -> None:
        self.modes = modes
        self._rng = random.Random(modes.seed)
        if lost is not None and lost != self.lost_modes:
            self.lost_modes = lost
            self._lost_rng = random.Random(lost.seed)

    def next_lost_answer(self) -> LostAnswer | None:
        if self.lost_queue:
            return self.lost_queue.popleft()
        modes, rng = self.lost_modes, self._lost_rng
        if modes.rate and modes.kinds and rng.random() < modes.rate:
            return LostAnswer(rng.choice(modes.kinds), rng.random() < modes.edit_share)
        return None

    def next_fault(self, method: str = "GET", path: str | None = None) -> FaultKind | None:
        for queued in self.queue:
            kind, methods, only_path = queued
            if (methods is None or method in methods) and only_path in (None, path):
                self.queue.remove(queued)
                return kind
        if self.modes.rate and self.modes.kinds and self._rng.random() < self.modes.rate:
            return self._rng.choice(self.modes.kinds)
        return None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    """Promise a body, send part of it, then return: the server closes the connection."""
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"4096"), (b"content-type", b"application/json")],
    }
    await send(start)
    await send({"type": "http.response.body", "body": b'{"count": ', "more_body": True})


class FaultMiddleware:
    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        patched = _CUSTOMER_PATH.match(scope["path"]) if scope["method"] == "PATCH" else None
        if patched is not None:
            lost = self.injector.next_lost_answer()
            if lost is not None:
                await self._lose_answer(scope, receive, send, int(patched.group(1)), lost)
                return
        kind = self.injector.next_fault(scope["method"], scope["path"])
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
        elif kind == "409":
            await _respond(send, 409, b'{"detail":"Conflict."}', [json_type])
        elif kind == "404":
            await _respond(send, 404, b'{"detail":"Not found."}', [json_type])
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
            await _drop(send)

    async def _lose_answer(
        self, scope: Scope, receive: Receive, send: Send, pk: int, lost: LostAnswer
    ) -> None:
        """Apply the PATCH, then lose its answer (only a successful one: a refusal is answered)."""
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        if not answer or answer[0].get("status") != 200:
            for message in answer:
                await send(message)
            return
        injector = self.injector
        injector.injected[f"lost_{lost.kind}"] += 1
        injector.lost[pk] = lost.kind
        if lost.edit and injector.person_edit is not None:
            code = injector.person_edit(pk)
            if code is not None:
                injector.edited[pk] = code
        if lost.kind == "502":
            await _respond(send, 502, _HTML_502, [(b"content-type", b"text/html")])
            return
        if lost.kind == "timeout":
            await asyncio.sleep(injector.lost_modes.timeout_seconds)
        await _drop(send)
