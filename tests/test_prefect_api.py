"""The Prefect API check before a run: Prefect Cloud is not refused, a busy API is "not ready"."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from omnisync.prefect_api import check_prefect_api, is_prefect_cloud
from omnisync.settings import SettingsError


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of ``script``, then the last one."""

    script: list[tuple[int, bytes]] = []
    seen: list[str] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path}")
        if "/csrf-token" in self.path:  # as Prefect Cloud: no CSRF tokens to fetch
            code, body = 404, b'{"detail": "Not Found"}'
        else:
            code, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


VERSION = (200, b'"0.8.4"')


def test_a_prefect_cloud_workspace_is_asked_what_it_serves(
    api: tuple[str, type[_Scripted]],
) -> None:
    root, handler = api
    url = f"{root}/api/accounts/3f1c/workspaces/9a2b"
    assert is_prefect_cloud(url) and is_prefect_cloud("https://api.prefect.cloud/api/x")
    handler.script = [(200, b"[]")]  # /admin/version would be a 404 there
    check_prefect_api(url)
    assert not any("/admin/version" in request for request in handler.seen), handler.seen


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_api_is_asked_once_more(api: tuple[str, type[_Scripted]], status: int) -> None:
    root, handler = api
    handler.script = [(status, b'{"detail": "busy"}'), VERSION]
    check_prefect_api(f"{root}/api")
    assert sum("/admin/version" in r for r in handler.seen) == 2, handler.seen


def test_an_api_busy_twice_is_not_ready_rather_than_not_a_prefect_api(
    api: tuple[str, type[_Scripted]],
) -> None:
    root, handler = api
    handler.script = [(503, b'{"detail": "starting"}')]
    with pytest.raises(SettingsError) as caught:
        check_prefect_api(f"{root}/api")
    assert "is not ready (answered 503 twice)" in str(caught.value)
    assert "is it a Prefect API" not in str(caught.value)
