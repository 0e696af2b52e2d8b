"""The Prefect API check before a run: Prefect Cloud is not refused, a busy API is "not ready"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omnisync.prefect_api import check_prefect_api, is_prefect_cloud
from omnisync.settings import SettingsError
from tests.one_answer_server import serving


class Scripted:
    """Answers each request with the next (status, body) of ``script``, then the last one, and
    keeps what it was asked in ``seen``."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes]] = []
        self.seen: list[str] = []

    def __call__(self, method: str, path: str) -> tuple[int, str, bytes]:
        self.seen.append(f"{method} {path}")
        if "/csrf-token" in path:  # as Prefect Cloud: no CSRF tokens to fetch
            return 404, "application/json", b'{"detail": "Not Found"}'
        code, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return code, "application/json", body


@pytest.fixture
def api() -> Iterator[tuple[str, Scripted]]:
    scripted = Scripted()
    with serving(scripted) as url:
        yield url, scripted


VERSION = (200, b'"0.8.4"')


def test_a_prefect_cloud_workspace_is_asked_what_it_serves(
    api: tuple[str, Scripted],
) -> None:
    root, handler = api
    url = f"{root}/api/accounts/3f1c/workspaces/9a2b"
    assert is_prefect_cloud(url) and is_prefect_cloud("https://api.prefect.cloud/api/x")
    handler.script = [(200, b"[]")]  # /admin/version would be a 404 there
    check_prefect_api(url)
    assert not any("/admin/version" in request for request in handler.seen), handler.seen


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_api_is_asked_once_more(api: tuple[str, Scripted], status: int) -> None:
    root, handler = api
    handler.script = [(status, b'{"detail": "busy"}'), VERSION]
    check_prefect_api(f"{root}/api")
    assert sum("/admin/version" in r for r in handler.seen) == 2, handler.seen


def test_an_api_busy_twice_is_not_ready_rather_than_not_a_prefect_api(
    api: tuple[str, Scripted],
) -> None:
    root, handler = api
    handler.script = [(503, b'{"detail": "starting"}')]
    with pytest.raises(SettingsError) as caught:
        check_prefect_api(f"{root}/api")
    assert "is not ready (answered 503 twice)" in str(caught.value)
    assert "is it a Prefect API" not in str(caught.value)
