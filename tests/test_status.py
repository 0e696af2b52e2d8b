"""``omnisync status`` tells what became of every run, including those that could not say so."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

from omnisync.commands.status import shown_run_id
from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.sync.sandbox_runs import cli_env, omnisync, start_omnisync, sync_ok

Make = Callable[..., SandboxServer]


def _kill_in_a_window(env: dict[str, str]) -> None:
    """Killed once its plan is saved: the next run finishes that plan."""
    process = start_omnisync(env, "sync")
    assert process.stderr is not None
    for line in process.stderr:
        if re.search(r"omnisync\.\w+ - typed chunk", line):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def test_a_killed_sync_is_shown_interrupted_and_then_taken_over(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=1500)
    env = cli_env(
        server,
        tmp_path,
        "",
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_MAX_RPS="50",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_WINDOW_ROWS="400",
        OMNISYNC_LOG_LEVEL="DEBUG",
    )
    _kill_in_a_window(env)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    (killed,) = store.runs.recent("customers")
    assert killed["status"] == "running"  # it could not record its end

    # Its process is gone: shown as interrupted at once, before any other run.
    shown = omnisync(env, "status")
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if shown_run_id(killed["run_id"]) in x)
    assert "interrupted" in line and "running" not in shown.stdout

    # The next run takes the stream over, and says so in the killed run's row; its result line
    # says it finished the killed run's plan (its windows are in its counts).
    assert "finishing the plan an earlier run left;" in sync_ok(env).stdout
    later, again = store.runs.recent("customers")
    assert later["status"] == "succeeded" and again["run_id"] == killed["run_id"]
    assert again["status"] == "interrupted"
    assert again["error"].startswith(f"taken over by run {later['run_id']}")
    shown = omnisync(env, "status")
    assert "running" not in shown.stdout and "taken over by run" in shown.stdout


def test_a_running_run_of_a_live_process_stays_running(tmp_path: Path) -> None:
    from omnisync.state import RunRecord
    from omnisync.state.record import outcome_now

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    with RunRecord(store, "a" * 32, "customers", "incremental"):
        (run,) = store.runs.recent()
        assert outcome_now(run) == "running"
    (run,) = store.runs.recent()
    assert outcome_now(run) == "succeeded"


def test_a_sync_taking_the_lock_leaves_a_verification_running_beside_it(tmp_path: Path) -> None:
    """From a review: a run that takes the stream's lock marks the stream's other running runs
    taken over (they were killed, or stalled), a verification too, which holds no lock and was
    alive: it showed ``interrupted`` until it ended."""
    from omnisync.state import RunRecord

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    with RunRecord(store, "d" * 32, "customers", "verify"):
        with store.lease.locked("customers", run_id="e" * 32):
            with RunRecord(store, "e" * 32, "customers", "incremental"):
                verify = next(r for r in store.runs.recent() if r["run_id"] == "d" * 32)
                assert verify["status"] == "running", verify


def test_a_run_taken_over_without_its_lock_says_its_process_was_gone(tmp_path: Path) -> None:
    """From a review: a run still marked running when another takes the stream (one killed
    before it took the lock) read "it was killed, or it stalled past its lease", where its
    process, of this host and gone, says which."""
    import json
    import socket
    import subprocess
    import sys

    from sqlalchemy import update

    from omnisync.state import RunRecord
    from omnisync.state.process import _IDENTITY
    from omnisync.state.schema import runs

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = f"{socket.gethostname()}:{ended.stdout.strip()}:{_IDENTITY}:x"
    store.runs.start("f" * 32, "customers", "incremental", None)
    with store.engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.run_id == "f" * 32)
            .values(counts=json.dumps({"process": gone}))
        )
    with (
        store.lease.locked("customers", run_id="a" * 32),
        RunRecord(store, "a" * 32, "customers", "incremental"),
    ):
        killed = next(r for r in store.runs.recent() if r["run_id"] == "f" * 32)
    assert killed["status"] == "interrupted"
    assert killed["error"] == f"taken over by run {'a' * 32}: its process was gone (killed)"


def test_a_run_stopped_by_ctrl_c_is_interrupted_not_failed(tmp_path: Path) -> None:
    """Found by a new user: Ctrl-C was recorded as ``failed`` with ``KeyboardInterrupt:`` and
    nothing after the colon."""
    import pytest

    from omnisync.state import RunRecord

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    with pytest.raises(KeyboardInterrupt), RunRecord(store, "b" * 32, "customers", "full"):
        raise KeyboardInterrupt
    (run,) = store.runs.recent()
    assert run["status"] == "interrupted", run
    assert run["error"] == "stopped by Ctrl-C (SIGINT)"


def test_a_run_ended_by_sigterm_under_prefect_is_interrupted_not_failed(tmp_path: Path) -> None:
    """From a review: under a Prefect API, Prefect turns SIGTERM (a worker or pod stopping) into
    TerminationSignal, and the run was recorded ``failed`` with ``TerminationSignal:``."""
    import signal

    import pytest
    from prefect.exceptions import TerminationSignal

    from omnisync.state import RunRecord

    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    with pytest.raises(TerminationSignal), RunRecord(store, "c" * 32, "customers", "full"):
        raise TerminationSignal(signal=signal.SIGTERM)
    (run,) = store.runs.recent()
    assert run["status"] == "interrupted", run
    assert run["error"] == "ended by SIGTERM (its worker or container stopping)"


def test_run_ids_are_shown_so_that_runs_can_be_told_apart() -> None:
    assert shown_run_id("0123456789abcdef0123456789abcdef") == "01234567"
    erp = "20261206T051000Z-1a2b3c4d"
    assert shown_run_id(erp) == erp


def test_a_busy_stream_is_skipped_not_an_error(make_sandbox: Make, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from omnisync.cli import app

    server = make_sandbox(customers=20)
    env = cli_env(server, tmp_path, "")
    store = StateStore(env["OMNISYNC_STATE_URL"])
    store.migrate()
    with store.lease.locked("customers", run_id="holder-run-1234"):
        result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skipped: stream 'customers' is busy")
    assert "error" not in result.output.lower()


def test_a_dask_address_the_terminal_run_does_not_use_is_named_in_one_line(
    make_sandbox: Make, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from omnisync.cli import app

    server = make_sandbox(customers=20)
    env = cli_env(server, tmp_path, "", OMNISYNC_DASK_ADDRESS="tcp://127.0.0.1:1")
    result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "OMNISYNC_DASK_ADDRESS" in line]
    assert notes == [
        "note: OMNISYNC_DASK_ADDRESS applies to Prefect runs (with PREFECT_API_URL set); this "
        "run extracts its windows in this process (OMNISYNC_WINDOW_CONCURRENCY)"
    ]


def test_a_sync_s_line_says_first_and_shows_its_result_line_s_counts_in_words() -> None:
    """Found by a new user: the first sync was listed ``incremental``, and its line showed the
    run's internal counters (``changes_logged``, ``read_after_watermark``, ...), where the sync
    itself had said "N read, N new or changed, N deleted, N quarantined, N flagged"."""
    import json

    from omnisync.commands.status import _run_lines

    counts = {
        "windows": 3,
        "read": 100_000,
        "written": 100_000,
        "changes_logged": 99_000,
        "quarantined": 2,
        "flagged": 1_271,
        "quarantined_marked": 0,
        "read_after_watermark": 100_000,
        "quarantined_after_watermark": 0,
        "deleted": 5,
        "deletion_check_requests": 2,
        "deletion_ranges_carried": 0,
        "unknown_fields": {},
    }
    run = {
        "counts": json.dumps(counts),
        "started_us": 1_800_000_000_000_000,
        "ended_us": 1_800_000_003_400_000,
        "status": "succeeded",
        "error": None,
        "stream": "customers",
        "kind": "incremental",
        "run_id": "a" * 32,
        "watermark_before_iso": None,
    }
    (first,) = _run_lines(run)
    assert " first " in first and "incremental" not in first, first
    said = first.split("run aaaaaaaa  ")[1]
    assert said == "100,000 read, 99,000 new or changed, 5 deleted, 2 quarantined, 1,271 flagged"
    (killed,) = _run_lines({**run, "counts": None, "ended_us": None, "status": "running"})
    assert " first " in killed, "a first run killed before it recorded counts is still first"
    erp = {**run, "kind": "reconcile", "counts": json.dumps({"planned": 3, "unknown_in_erp": 2})}
    assert _run_lines(erp)[0].endswith("3 planned, 2 unknown in erp"), "words, not column names"
    taken = {**run, "status": "interrupted", "error": f"taken over by run {'b' * 32}: why"}
    assert _run_lines(taken)[1] == "[red]taken over by run bbbbbbbb: why[/red]", "as listed"
    # only a run's name is cut: a plan's or a file's hex name in an error stays whole (a review)
    probe = {**taken, "error": f"cannot write /lake/_probe-{'c' * 32}"}
    assert _run_lines(probe)[1] == f"[red]cannot write /lake/_probe-{'c' * 32}[/red]"
    later = {**run, "watermark_before_iso": "2026-12-01T00:00:00.000000Z"}
    assert " incremental " in _run_lines(later)[0]
    assert " full " in _run_lines({**later, "kind": "full"})[0]


def test_a_run_error_is_shown_whole_and_as_written(tmp_path: Path) -> None:
    """A review found a run's error printed inside Rich markup: a path in brackets (`[/tmp/x]`)
    stopped `omnisync status` with a MarkupError, `[type=missing, ...]` vanished, and an error
    was cut at 300 characters, in the middle of the advice that ends it."""
    from tests.cli_runner import run_cli

    url = f"sqlite:///{tmp_path}/state.db"
    store = StateStore(url)
    store.migrate()
    error = (
        "LakeDamaged: the lake's file [/tmp/x] cannot be read ([type=missing, input=None]) "
        + "x" * 400
        + " run `omnisync sync --full-refresh`\\"
    )
    store.runs.start("a" * 32, "customers", "incremental", None)
    store.runs.finish("a" * 32, "failed", error=error)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNITRON_", "OMNISYNC_"))}
    env.update(
        OMNISYNC_STATE_URL=url, OMNITRON_URL="http://127.0.0.1:9", OMNISYNC_LAKE=str(tmp_path)
    )
    shown = run_cli(env, "status")
    assert shown.returncode == 0, shown.stderr
    said = "".join(shown.stdout.split())
    assert "".join(error.split()) in said, shown.stdout
    assert "[/red]" not in shown.stdout
