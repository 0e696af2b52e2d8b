"""Ctrl-C in ``omnisync sync``, as a terminal sends it (SIGINT to the whole process group): one
line saying what stays and what to do, exit 130, no traceback, the run recorded as interrupted,
and the next run goes on to every customer. The signal comes on the run's own progress (its
DEBUG line for a window done), never after a sleep."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    cli_env,
    omnisync,
    settings_for,
    start_omnisync,
    sync_ok,
    wait_for_server_clock,
)

Make = Callable[..., SandboxServer]
WINDOW_DONE = re.compile(r"omnisync\.\w+ - window \[.*\) done")


def test_ctrl_c_in_a_sync_says_what_stays_and_the_next_run_goes_on(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server, env, process, said = _stopped_after_a_window(make_sandbox, tmp_path, 11, "SIGINT")
    assert process.returncode == 130, said[-3000:]
    assert "Traceback" not in said
    assert (
        "stopped by Ctrl-C: what it finished is kept (a window's new versions are in "
        "customer_changes/ at once, its rows in customers/ when its plan is done); the next "
        "`omnisync sync` goes on from "
        "there"
    ) in said
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    (run,) = store.runs.recent()
    opened = store.plans.open("customers")
    store.dispose()
    assert run["status"] == "interrupted", run
    assert opened is not None
    done_before = [window for window in opened[1] if window.status == "done"]
    shown = omnisync(env, "status").stdout
    assert "unfinished plan" in shown, shown
    assert re.search(r"[1-9]\d* of \d+ windows read \([\d,]+ customers", shown), shown
    assert "the next sync finishes it" in shown, shown

    wait_for_server_clock(server, 0)
    done = sync_ok(env)
    # the summary's counts hold the earlier run's windows of the plan too: it says how many
    read_before = sum(window.rows or 0 for window in done_before)
    assert (
        f"finishing the plan an earlier run left (with its {len(done_before)} window(s) and "
        f"{read_before:,} read before this run)"
    ) in done.stdout, done.stdout
    assert_lake_matches_truth(server, settings_for(server, tmp_path).lake)


def test_sigterm_in_a_sync_stops_it_as_ctrl_c_does(make_sandbox: Make, tmp_path: Path) -> None:
    """SIGTERM, as a scheduler, systemd or a container runtime sends it to the command alone:
    Ctrl-C's path (omnisync/stopping.py), said as SIGTERM, exit 143, the run recorded as ended
    by it; not a process gone at once with its run left 'running'."""
    server, env, process, said = _stopped_after_a_window(
        make_sandbox, tmp_path, 12, "SIGTERM", "--full-refresh"
    )
    assert process.returncode == 143, said[-3000:]
    assert "Traceback" not in said
    assert "stopped by SIGTERM: what it finished is kept" in said, said[-3000:]
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    (run,) = store.runs.recent()
    store.dispose()
    assert (run["status"], run["error"]) == (
        "interrupted",
        "ended by SIGTERM (a scheduler or container stopping it)",
    ), run
    wait_for_server_clock(server, 0)
    done = sync_ok(env)  # finishes the full refresh's plan: it says it rebuilt customers/ too
    assert "; customers/ rebuilt from what they read, finishing the plan an earlier run left (" in (
        done.stdout
    ), done.stdout
    assert_lake_matches_truth(server, settings_for(server, tmp_path).lake)


def test_a_full_refresh_says_it_gives_up_the_plan_an_earlier_run_left(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """Found by a new user: a full refresh dropped the windows a stopped run had read without
    a word."""
    server, env, process, said = _stopped_after_a_window(make_sandbox, tmp_path, 13, "SIGINT")
    assert process.returncode == 130, said[-3000:]
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    opened = store.plans.open("customers")
    store.dispose()
    assert opened is not None
    read = sum(window.status == "done" for window in opened[1])
    wait_for_server_clock(server, 0)
    done = sync_ok(env, "--full-refresh")
    assert (
        "a full refresh gives up the plan an earlier run left unfinished "
        f"({read} of {len(opened[1])} windows read): it reads every customer again"
    ) in done.stderr, done.stderr[-3000:]
    assert "; customers/ rebuilt from what they read;" in done.stdout, done.stdout
    assert_lake_matches_truth(server, settings_for(server, tmp_path).lake)


def _stopped_after_a_window(
    make_sandbox: Make, tmp_path: Path, seed: int, how: str, *args: str
) -> tuple[SandboxServer, dict[str, str], subprocess.Popen[str], str]:
    """``omnisync sync ARGS`` in its own process (no Prefect API), sent ``how`` once a window
    is done: SIGINT to its process group (a terminal's Ctrl-C), or SIGTERM to it alone (a
    scheduler's, a container's). Returns what it said, once it ended."""
    server = make_sandbox(customers=1200, seed=seed, max_limit=100)
    env = cli_env(
        server,
        tmp_path,
        "",
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_WINDOW_ROWS="150",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_LOG_LEVEL="DEBUG",
    )
    process = start_omnisync(env, "sync", *args)
    assert process.stderr is not None
    tail: list[str] = []
    sent = False
    for line in process.stderr:
        tail = [*tail[-40:], line]
        if WINDOW_DONE.search(line):
            if how == "SIGINT":
                os.killpg(process.pid, signal.SIGINT)
            else:
                process.terminate()
            sent = True
            break
    said = "".join(tail) + process.stderr.read()
    process.wait(timeout=120)
    assert sent, said[-3000:]
    return server, env, process, said
