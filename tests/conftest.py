"""Shared fixtures: real sandbox servers over real HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

from omnisync.validation.gx_import import import_gx
from sandbox import SandboxModes, SandboxServer

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# As in a run (omnisync/validation/runner.py), before any test module imports GX: what GX imports
# for expectations no suite here uses loads on first use, and its models are built as in a run.
import_gx()
# Property tests judge answers, not speed: on a shared two-core machine an example may take
# longer than hypothesis's default deadline, which would fail a test whose answers are right.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")


def own_generators(*modules: Any) -> None:
    """Give each module's ``random`` a generator of its own. Hypothesis warns when the global
    generator moves while it draws (a strategy must not use it; an error in a later Hypothesis),
    and threads that outlive a test moved it all the same: Prefect's events client (websockets'
    keepalive pings and reconnects), Prefect's client retries and stamina's jitter on a retried
    window's or request's thread (found by recording every draw made off the main thread)."""
    import random

    for module in modules:
        module.random = random.Random()


def _libraries_off_the_global_generator() -> None:
    import prefect.utilities.math  # its client's retries and its services' intervals
    import stamina._core
    import tenacity.wait
    import websockets.asyncio.connection

    own_generators(
        prefect.utilities.math, stamina._core, tenacity.wait, websockets.asyncio.connection
    )


_libraries_off_the_global_generator()


@pytest.fixture(scope="session")
def quiet_sandbox() -> Iterator[SandboxServer]:
    """A sandbox nobody reconfigures: read-only tests share it."""
    with SandboxServer(customers=3000, seed=7) as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with their own data and modes; all are stopped after the test."""
    started: list[SandboxServer] = []

    def start(
        customers: int = 500, seed: int = 7, app: dict[str, Any] | None = None, **modes: Any
    ) -> SandboxServer:
        server = SandboxServer(
            customers=customers, seed=seed, modes=SandboxModes(**modes), **(app or {})
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def login(server: SandboxServer, client: httpx.Client | None = None) -> dict[str, str]:
    client = client or httpx.Client(base_url=server.url)
    key = client.post("/api/v1/auth/login/", json={"username": "sandbox", "password": "sandbox"})
    key.raise_for_status()
    return {"Authorization": f"Token {key.json()['key']}"}


def truth(server: SandboxServer) -> list[dict[str, Any]]:
    response = server.admin.get("truth")
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()["results"]
    return rows


SHARED_PREFECT_API = "OMNISYNC_TEST_SHARED_PREFECT_API"


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A Prefect API for the whole session: flows run for real against it. Under xdist every
    worker uses the one server the controller started (``pytest_configure``); alone, the test
    harness starts one (about 10 s of a two-core machine each time)."""
    from prefect.settings import PREFECT_API_URL

    shared = os.environ.get(SHARED_PREFECT_API)
    if shared:
        yield from _shared_prefect_api(shared)
        return
    from prefect.testing.utilities import prefect_test_harness

    # None: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (the Makefile gives 120 s), as a loaded
    # two-core machine can take longer than the harness's own 30 s to start the server.
    with prefect_test_harness(server_startup_timeout=None):
        yield str(PREFECT_API_URL.value())


def _shared_prefect_api(url: str) -> Iterator[str]:
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    deadline = time.monotonic() + timeout
    while True:  # the server's own answer, not a guess of its start-up time
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the shared Prefect server at {url} did not start in {timeout:.0f} s")
        time.sleep(0.1)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        # as the harness does: code in a context copied before this one sees the server too
        with prefect.context._temporary_global_settings_context(
            prefect.context.get_settings_context()
        ):
            yield url


def _start_shared_prefect_server(config: pytest.Config) -> None:
    """One Prefect server for every xdist worker, started without waiting for it: each worker's
    ``prefect_api`` waits for its health answer when a test first needs it. One server instead
    of one per worker saves a server's start (about 10 CPU-s) and its background loops per
    worker."""
    import subprocess
    import sys
    import tempfile

    import prefect

    home = tempfile.mkdtemp(prefix="omnisync-prefect-")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": home,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # loops no test needs (schedules, late runs, automations...), each waking the server
        **{
            f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
            for name in (
                "SCHEDULER",
                "LATE_RUNS",
                "FOREMAN",
                "PAUSE_EXPIRATIONS",
                "CANCELLATION_CLEANUP",
                "REPOSSESSOR",
                "TRIGGERS",
                "DB_VACUUM",
                "CLEANUP_RECONCILER",
                "EVENT_LOGGER",
            )
        },
    }
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect.__module_path__.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        preexec_fn=_ends_with_parent if sys.platform == "linux" else None,
    )
    config.stash[_SHARED_SERVER] = (process, home)
    os.environ[SHARED_PREFECT_API] = f"http://127.0.0.1:{port}/api"  # workers inherit it


def _ends_with_parent() -> None:
    """In the server's process before it starts: SIGTERM when the pytest that started it dies,
    even by SIGKILL, so that no server outlives its run."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_SHARED_SERVER = pytest.StashKey[tuple[Any, str]]()


def database_url(url: str, name: str) -> str:
    """``url`` if the server answers; otherwise skip, or fail when CI=true (CI must test it)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except Exception as exc:
        message = f"{name} at {url} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    default = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    return database_url(os.environ.get("OMNISYNC_TEST_POSTGRES_URL", default), "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    default = "mysql+pymysql://root:@127.0.0.1:3306/test"
    return database_url(os.environ.get("OMNISYNC_TEST_MARIADB_URL", default), "MariaDB")


def databases_used(item: pytest.Item) -> set[str]:
    """The database servers a test uses, by its parameter (``[postgresql]``, ``[mariadb_url]``)
    when it names one, or else by its name and fixtures."""
    names = " ".join([item.nodeid.lower(), *getattr(item, "fixturenames", ())])
    parameter = item.nodeid.lower().partition("[")[2]
    for key in (parameter, names):
        used = {server for server in ("postgres", "mariadb") if server in key}
        if used:
            return used
    return set()


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist declares this marker; a run with ``-p no:xdist`` must still accept it.
    config.addinivalue_line("markers", "xdist_group(name): tests run on one xdist worker")
    controller = "PYTEST_XDIST_WORKER" not in os.environ
    workers = getattr(config.option, "numprocesses", None)
    if controller and workers and not config.option.collectonly:
        os.environ.pop(SHARED_PREFECT_API, None)
        _start_shared_prefect_server(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    started = config.stash.get(_SHARED_SERVER, None)
    if started is None:
        return
    import shutil
    import subprocess

    process, home = started
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(home, ignore_errors=True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m e2e`` (``make test-e2e``), a test module that marks no test ``e2e`` is not
    imported: each worker imported every module of the suite (seconds of CPU) to run a few."""
    if config.getoption("markexpr", "") != "e2e" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return "mark.e2e" not in collection_path.read_text(encoding="utf-8") or None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the shared PostgreSQL database run on one xdist worker, one after another,
    as do those of the MariaDB database: each uses the same tables (``make test`` runs the
    suite with ``-n 3``). The servers are separate, so the two groups run side by side, unless
    a test uses both: then all of them share one group."""
    used = {item: databases_used(item) for item in items}
    together = any(len(servers) > 1 for servers in used.values())
    for item, servers in used.items():
        if servers:
            group = "databases" if together else next(iter(servers))
            item.add_marker(pytest.mark.xdist_group(group))
    # The scenario folders first, the quick tests last: xdist hands tests out in this order, and
    # quick ones at the end fill the workers evenly where slow ones left one worker running
    # alone for about a minute. Each file keeps its tests together and in order.
    items.sort(key=lambda item: _SCENARIOS_FIRST.get(item.path.parent.name, len(_SCENARIOS_FIRST)))


#: test folders by how long their tests take, slowest first (measured: docs/performance.md)
_SCENARIOS_FIRST = {name: rank for rank, name in enumerate(["verify", "sync", "erp", "lake"])}
