"""Running the sandbox: in the foreground (CLI) or in a background thread (tests, demo, bench)."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from sandbox.app import SandboxState, create_app
from sandbox.modes import SandboxModes


class _DroppedConnectionNoise(logging.Filter):
    """The ``drop`` fault ends responses early on purpose; uvicorn need not report each one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_DroppedConnectionNoise())
# The admin client speaks plain HTTP to the loopback, yet httpx builds a TLS context for every
# client by reading the whole CA bundle (tens of ms of CPU): every server's client shares one.
# Sharing it is safe here: httpcore changes a context (its ALPN protocols) only for https, which
# these clients never speak (omnisync/client/tls.py guards the product's shared context).
_tls_context = functools.cache(httpx.create_ssl_context)


class SandboxServer:
    """A sandbox on ``127.0.0.1``, served by uvicorn in a daemon thread.

    Use as a context manager; ``url`` is the base URL, ``admin`` a client for ``/_sandbox/``.
    """

    def __init__(
        self,
        customers: int = 1000,
        seed: int = 7,
        modes: SandboxModes | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        **app_kwargs: Any,
    ) -> None:
        self.app = create_app(customers=customers, seed=seed, modes=modes, **app_kwargs)
        self.state: SandboxState = self.app.state.sandbox
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it small answers wait ~40 ms (Nagle).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=30,
            date_header=False,  # the app sets it: the date_skew_seconds mode varies it
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="omnitron-sandbox", daemon=True)
        self.admin = httpx.Client(
            base_url=f"{self.url}/_sandbox/", timeout=30, verify=_tls_context()
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.admin.close()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def set_modes(self, **changes: Any) -> dict[str, Any]:
        response = self.admin.patch("modes", json=changes)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    customers: int,
    seed: int,
    modes: SandboxModes,
    port: int,
    host: str,
    on_ready: Callable[[str], None],
    **app_kwargs: Any,
) -> None:
    """Serve in the foreground until interrupted (the ``omnisync sandbox`` command)."""
    server = SandboxServer(
        customers=customers, seed=seed, modes=modes, port=port, host=host, **app_kwargs
    )
    on_ready(server.url)
    server.admin.close()
    server._run()
