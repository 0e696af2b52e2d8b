"""Runs as a user sees them: one writer per stream (G5), clear one-line errors, ``status``."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from typer.testing import CliRunner

from omnisync.cli import app
from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.flows import sync_customers
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    cli_env,
    forget_stream,
    omnisync,
    omnisync_process,
    settings_for,
    start_omnisync,
    sync_ok,
    wait_for_server_clock,
)

Make = Callable[..., SandboxServer]
runner = CliRunner()


def test_two_runs_racing_on_postgresql_never_interleave(
    prefect_api: str,
    make_sandbox: Make,
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whichever run takes the stream holds it, planning, until the other run has ended: the
    overlap is made by the runs' own steps, not by how long a run happens to take."""
    import omnisync.sync.run

    server = make_sandbox(customers=1500, writers_per_second=0)
    settings = settings_for(server, tmp_path, state_url=postgres_url)
    forget_stream(postgres_url)
    outcomes: list[Any] = []
    barrier = threading.Barrier(2)
    one_ended, planning = threading.Event(), threading.Lock()
    plan_for_real = omnisync.sync.run.new_plan

    def new_plan(*args: Any, **kwargs: Any) -> Any:
        if planning.acquire(blocking=False):  # the first run to plan waits for the other
            one_ended.wait(timeout=120)
        return plan_for_real(*args, **kwargs)

    monkeypatch.setattr(omnisync.sync.run, "new_plan", new_plan)

    def run() -> None:
        barrier.wait()
        outcomes.append(sync_customers(settings=settings, return_state=True))
        one_ended.set()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [o for o in outcomes if o.is_cancelled()]
    succeeded = [o for o in outcomes if o.is_completed()]
    assert len(refused) == 1 and len(succeeded) == 1, outcomes
    assert "is busy" in str(refused[0].message), "a refused run names the holder, not a failure"
    assert_lake_matches_truth(server, settings.lake)


def env_for(server: SandboxServer | None, root: Path, **extra: str) -> dict[str, str]:
    env = {
        "OMNITRON_URL": server.url if server else "",
        "OMNITRON_USERNAME": "sandbox",
        "OMNITRON_PASSWORD": "sandbox",
        "OMNISYNC_LAKE": str(root / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{root}/state.db",
        "OMNISYNC_RETRY_ATTEMPTS": "2",
        "OMNISYNC_LAG_SECONDS": "0",
        "OMNISYNC_MAX_RPS": "1000",
    }
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("case", "extra", "message", "code"),
    [
        ("missing URL", {"OMNITRON_URL": ""}, "OMNITRON_URL is not set", 2),
        ("wrong credentials", {"OMNITRON_PASSWORD": "wrong-pass"}, "check OMNITRON_USERNAME", 2),
        ("unreachable server", {"OMNITRON_URL": "http://127.0.0.1:9"}, "failed to connect", 1),
        ("unwritable lake", {"OMNISYNC_LAKE": "/proc/omnisync-lake"}, "OMNISYNC_LAKE", 2),
        (
            "unreachable state database",
            {"OMNISYNC_STATE_URL": "postgresql+psycopg://u:pw-123@127.0.0.1:1/x"},
            "OMNISYNC_STATE_URL",
            2,
        ),
        ("bad setting", {"OMNISYNC_PAGE_SIZE": "lots"}, "OMNISYNC_PAGE_SIZE", 2),
        ("setting not JSON", {"OMNISYNC_PII_POLICY": "{email: hash"}, "OMNISYNC_PII_POLICY", 2),
    ],
)
def test_bad_configuration_is_one_line_and_keeps_the_watermark(
    make_sandbox: Make, tmp_path: Path, case: str, extra: dict[str, str], message: str, code: int
) -> None:
    server = make_sandbox(customers=20)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    before = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    store.watermarks.set("customers", before, "earlier")
    env = env_for(server, tmp_path, **extra)
    if not env["OMNITRON_URL"]:
        env["OMNITRON_URL"] = ""
    result = runner.invoke(app, ["sync"], env=env)
    assert result.exit_code == code, (case, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], (case, result.output)
    assert "Traceback" not in result.output and "pw-123" not in result.output
    assert store.watermarks.get("customers") == before


@pytest.mark.parametrize(
    ("url", "said"),
    [("", "OMNITRON_URL is not set"), ("http://127.0.0.1:9", "no credentials")],
)
def test_a_sync_stopped_by_a_setting_makes_nothing_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, said: str
) -> None:
    """The default lake (./lake) and state database (./.omnisync/state.db) are not made by a
    command that stops at once on a setting (found by a new user's tryout)."""
    monkeypatch.chdir(tmp_path)
    # the defaults, and no credentials: None removes a variable for the command
    env = {"OMNITRON_URL": url, "OMNISYNC_LAKE": None, "OMNISYNC_STATE_URL": None}
    env |= {"OMNITRON_TOKEN": None, "OMNITRON_USERNAME": None, "OMNITRON_PASSWORD": None}
    result = runner.invoke(app, ["sync"], env=env)
    assert result.exit_code == 2 and said in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_run_opened_without_omnitron_url_makes_no_lake_and_no_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployments, repairs and Dask workers open a run without the command line's checks."""
    from omnisync.client import ConfigurationError
    from omnisync.settings import Settings
    from omnisync.sync.context import open_run

    monkeypatch.chdir(tmp_path)
    settings = Settings(omnitron_url=None, lake="./lake")
    with pytest.raises(ConfigurationError, match="OMNITRON_URL"), open_run(settings, "r1"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_sync_and_status_from_the_command_line(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300)
    env = env_for(server, tmp_path)
    result = runner.invoke(app, ["sync"], env=env)
    assert result.exit_code == 0, result.output
    assert "300 read" in result.output and "Data Docs" in result.output
    status = runner.invoke(app, ["status"], env=env)
    assert status.exit_code == 0, status.output
    assert "customers" in status.output and "succeeded" in status.output


def latest_run_id(root: Path) -> str:
    store = StateStore(f"sqlite:///{root}/state.db")
    try:
        return str(store.runs.recent(limit=1)[0]["run_id"])
    finally:
        store.dispose()


def _recorded_flow_run(run_id: str) -> bool:
    """Whether a flow run on the Prefect API published the summary of omnisync's run
    ``run_id``: other workers' runs share the server, so a count of flow runs proves nothing."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:  # the newest: the server answers 200 at most
        summaries = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sync-customers"])),
            sort=ArtifactSort.CREATED_DESC,
        )
    return any(a.flow_run_id is not None and run_id in str(a.data) for a in summaries)


def test_a_terminal_run_starts_no_prefect_server_and_a_configured_api_records_the_run(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    """Without a Prefect API, ``omnisync sync`` runs its steps in its own process: no temporary
    Prefect server (whose database would appear in PREFECT_HOME), its progress on stderr. With
    one, the same command is a ``sync-customers`` flow run the server records."""
    server = make_sandbox(customers=200)
    home = tmp_path / "prefect-home"
    env = cli_env(
        server,
        tmp_path,
        prefect_api,
        PREFECT_HOME=str(home),
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_LOG_LEVEL="INFO",
    )
    done = omnisync_process(env, "sync")  # a fresh process: no Prefect context of the test's
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok 200 read"), done.stdout  # the result, on stdout
    assert "omnisync.sync - planned 1 window(s)" in done.stderr, done.stderr
    assert not [p for p in home.rglob("*") if p.suffix == ".db"], "a Prefect server was started"
    terminal_run = latest_run_id(tmp_path)
    server.admin.post("modify", json={"count": 5})
    via = cli_env(server, tmp_path, prefect_api, via_prefect=True, OMNISYNC_LAG_SECONDS="0")
    assert "read" in sync_ok(via).stdout
    assert not _recorded_flow_run(terminal_run), "a terminal run reached the Prefect API"
    assert _recorded_flow_run(latest_run_id(tmp_path))


def test_no_secret_reaches_the_lake_the_state_or_the_logs(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password = "pw-Very-Secret-42"
    server = make_sandbox(customers=400, token_max_requests=5, app={"users": {"sandbox": password}})
    settings = settings_for(server, tmp_path, omnitron_password=password)
    caplog.set_level("DEBUG")
    sync_customers(settings=settings)
    secrets = [password, *server.state.tokens]
    assert len(secrets) > 1, "tokens were issued"
    blobs = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    for secret in secrets:
        assert all(secret.encode() not in blob for blob in blobs), "a secret was written to disk"
        assert secret not in caplog.text, "a secret was logged"


def test_a_busy_stream_refuses_a_run_at_once_and_records_it(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    """The second run is not a failure: exit code 3 (no wait configured), one line naming the
    holder's run and its start, and ``refused`` in ``omnisync status``; in Prefect the refused
    flow run ends Cancelled. (How fast it answers is measured by ``bench/cli_latency.py``.)"""
    server = make_sandbox(customers=50)
    settings = settings_for(server, tmp_path)
    store = StateStore(settings.state_url.get_secret_value())
    store.migrate()
    env = cli_env(server, tmp_path, prefect_api)
    with store.lease.locked("customers", run_id="holder-run-1234"):
        refused = omnisync(env, "sync")
        state = sync_customers(settings=settings, return_state=True)
    assert refused.returncode == 3, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holder-run-1234" in lines[0] and "since 20" in lines[0], lines
    assert state.is_cancelled() and "holder-run-1234" in str(state.message)
    status = omnisync({**env, "COLUMNS": "200"}, "status")
    assert status.stdout.count("refused") == 2, status.stdout


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_frozen_holder_that_was_taken_over_changes_nothing_when_it_wakes(
    prefect_api: str,
    make_sandbox: Make,
    tmp_path: Path,
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    """G5: run A is frozen (SIGSTOP) past its lease in the middle of its windows; run B takes
    the stream over and finishes; A, resumed (SIGCONT), must change nothing at all."""
    server = make_sandbox(customers=2500, seed=12, max_limit=100)
    url = f"sqlite:///{tmp_path}/state.db"
    if database == "postgresql":
        url = request.getfixturevalue("postgres_url")
        forget_stream(url)
    env = cli_env(
        server,
        tmp_path,
        prefect_api,
        OMNISYNC_STATE_URL=url,
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_LOCK_LEASE_SECONDS="3",
        OMNISYNC_WINDOW_ROWS="400",
        OMNISYNC_CHUNK_ROWS="150",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_WINDOW_CONCURRENCY="1",
        OMNISYNC_LOG_LEVEL="DEBUG",
    )
    first = start_omnisync(env, "sync")
    assert first.stderr is not None
    for line in first.stderr:
        if "omnisync.sync - window [" in line and ") done" in line:
            os.killpg(first.pid, signal.SIGSTOP)
            break
    else:
        raise AssertionError("run A never finished a window")
    second = omnisync({**env, "OMNISYNC_LOCK_WAIT_SECONDS": "120"}, "sync")
    assert second.returncode == 0, second.stderr[-3000:]
    store = StateStore(url)
    before = (lake_files(tmp_path / "lake"), state_rows(store))
    os.killpg(first.pid, signal.SIGCONT)
    _, rest = first.communicate(timeout=120)
    assert first.returncode != 0, "run A cannot complete after losing its lock"
    assert "lost the lock" in rest, rest[-3000:]
    assert (lake_files(tmp_path / "lake"), state_rows(store)) == before, "run A changed something"
    assert_lake_matches_truth(server, str(tmp_path / "lake"))


def lake_files(lake: Path) -> dict[str, bytes]:
    """Every file of the lake's datasets (staging and reports aside), with its bytes."""
    return {
        str(path.relative_to(lake)): path.read_bytes()
        for path in sorted(lake.rglob("*"))
        if path.is_file() and not str(path.relative_to(lake)).startswith(("_staging", "_reports"))
    }


def state_rows(store: StateStore) -> list[object]:
    with store.engine.connect() as connection:
        return [
            sorted(map(tuple, connection.execute(sqlalchemy.text(query)).fetchall()))
            for query in (
                "select stream, value_us, run_id from omnisync_watermarks where stream = 'customers'",
                "select plan_id, lo_us, status, rows from omnisync_windows where stream = 'customers'",
            )
        ]


@pytest.mark.parametrize("where", ["planning", "artifact"])
def test_every_run_is_recorded_once_whatever_ends_it(
    prefect_api: str,
    make_sandbox: Make,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A failure while planning, or after the watermark moved (the artifact), is recorded as
    failed with its error: never missing, never left running."""
    import flows.orchestration
    import omnisync.sync.run

    server = make_sandbox(customers=100)
    settings = settings_for(server, tmp_path, lag_seconds=0)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{where} broke")

    if where == "planning":
        monkeypatch.setattr(omnisync.sync.run, "new_plan", broken)
    else:
        monkeypatch.setattr(flows.orchestration, "create_markdown_artifact", broken)
    state = sync_customers(settings=settings, return_state=True)
    assert state.is_failed()
    runs = StateStore(settings.state_url.get_secret_value()).runs.recent()
    assert len(runs) == 1 and runs[0]["status"] == "failed" and runs[0]["ended_us"]
    assert f"{where} broke" in runs[0]["error"]


def _names_no_host(host: str) -> bool:
    """Whether this machine's resolver says ``host`` does not exist (an offline one may say it
    cannot answer now instead, which is retried)."""
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror as exc:
        return exc.errno == socket.EAI_NONAME
    return False


@pytest.mark.parametrize(
    ("url", "host"),
    [("http://127.0.0.1:9", "127.0.0.1:9"), ("http://omnitron.invalid", "omnitron.invalid")],
    ids=["connection-refused", "unknown-host"],
)
def test_an_unreachable_omnitron_is_named_in_one_line(
    make_sandbox: Make, tmp_path: Path, url: str, host: str
) -> None:
    """With the default retry budget, the command answers in one line naming the host: the
    preflight retries a refused connection briefly, and says at once that a host does not exist
    (a mistyped OMNITRON_URL, a mistake to fix); scheduled runs keep their full budget
    (``bench/cli_latency.py`` measures how fast)."""
    code, said = (1, "failed to connect: connection refused")
    if host == "omnitron.invalid":
        code, said = (
            (2, "the host name does not exist")
            if _names_no_host(host)
            else (1, "the host name could not be resolved")
        )
    env = env_for(None, tmp_path, OMNITRON_URL=url)
    del env["OMNISYNC_RETRY_ATTEMPTS"]
    result = runner.invoke(app, ["sync"], env=env)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and host in lines[0] and said in lines[0], lines
    assert ("attempts" in lines[0]) == (code == 1), "retried only when it may pass"


@pytest.mark.parametrize("via_prefect", [False, True], ids=["terminal", "flow-run"])
def test_an_incremental_whose_changes_fit_one_page_costs_three_requests_deletion_check_included(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, via_prefect: bool
) -> None:
    """A login, the count of every customer and one page, through ``omnisync sync``: the
    server's filters as the first run recorded them, the server's clock from the count's Date
    header, and the page (everything changed since the window's start) read by extraction and
    the deletion check alike (``tests/sync/test_requests.py`` counts them by kind). A flow run
    the command line starts uses the preflight's login and count."""
    server = make_sandbox(customers=1200)
    env = cli_env(server, tmp_path, prefect_api, via_prefect=via_prefect, OMNISYNC_LAG_SECONDS="0")
    sync_ok(env)
    server.admin.post("modify", json={"count": 40})
    wait_for_server_clock(server, 0)
    before = server.admin.get("stats").json()["requests"]
    sync_ok(env)  # the 40 changes, and the lookback's re-read of the newest version
    after = server.admin.get("stats").json()["requests"]
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    assert spent == {"POST /api/v1/auth/login/": 1, "GET /api/v1/customers/": 2}, spent
    assert_lake_matches_truth(server, str(tmp_path / "lake"))


def test_the_run_summary_links_the_run_s_own_validation_pages(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    """The Prefect artifact of a sync names this run's own Data Docs pages (not the index that
    every run rewrites), as links where the lake is served, and the pages stay for later runs."""
    import re
    from urllib.parse import unquote

    from tests.erp.test_reconcile import artifacts

    server = make_sandbox(customers=1500)
    settings = settings_for(server, tmp_path, lake_browse_url="http://reports.test/lake/")
    lake = tmp_path / "lake"

    def own_pages(run_id: str) -> list[Path]:
        (summary,) = [a for a in artifacts("sync-customers") if run_id in str(a.data)]
        links = re.findall(r"\]\(http://reports\.test/lake/([^)]+)\)", str(summary.data))
        assert "_reports/data_docs/index.html" in links
        pages = [lake / unquote(link) for link in links if "/validations/" in link]
        assert pages, "the run's own pages are listed"
        assert all(f"/customers/{run_id}-" in str(page) for page in pages)
        return pages

    first = sync_customers(settings=settings)
    first_pages = own_pages(first["run_id"])
    server.admin.post("modify", json={"count": 5})
    wait_for_server_clock(server, 2)
    second = sync_customers(settings=settings)
    second_pages = own_pages(second["run_id"])
    assert not set(first_pages) & set(second_pages)
    assert all(page.exists() for page in [*first_pages, *second_pages])

    plain = sync_customers(settings=settings.model_copy(update={"lake_browse_url": None}))
    (summary,) = [a for a in artifacts("sync-customers") if plain["run_id"] in str(a.data)]
    assert f"`{lake}/_reports/data_docs/validations/customers/{plain['run_id']}-" in str(
        summary.data
    ), "without a served lake, the path to copy, not a link no browser opens"
