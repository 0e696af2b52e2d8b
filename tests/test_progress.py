"""A long step says up front how long it should take, then how long is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.orchestration import Pacer, duration, progress_line


def test_the_first_report_says_what_is_ahead_at_the_configured_rate() -> None:
    line = progress_line("erp-write-back", 0, 5215, rate=10)
    assert line == "erp-write-back: 5,215 changes at 10/s: about 9 minutes"


def test_later_reports_give_the_time_left_at_the_pace_so_far() -> None:
    line = progress_line("erp-write-back", 1000, 5215, rate=10, elapsed=100.0)
    assert line == "erp-write-back: 1,000 of 5,215 (19%), about 7 minutes left"
    assert progress_line("erp-write-back", 5215, 5215, elapsed=521.0).endswith("(100%)")


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (1, 45, 521.5, 7200)] == [
        "1 second",
        "45 seconds",
        "9 minutes",
        "2.0 hours",
    ]


def test_a_report_counted_before_another_but_arriving_after_it_does_not_move_progress_back() -> (
    None
):
    pacer = Pacer(seconds=0.0)
    assert pacer.due(0, 10)
    assert pacer.due(10, 10)  # the last change's report came first
    assert not pacer.due(9, 10), "a late report of an earlier count is dropped"
    assert pacer.due(0, 5), "a new long step starts again"


def test_one_change_and_a_second_are_said_in_the_singular() -> None:
    assert progress_line("erp-write-back", 0, 1, rate=10) == (
        "erp-write-back: 1 change at 10/s: about 1 second"
    )
    assert duration(0.3) == "1 second"


@pytest.mark.parametrize("window_concurrency", [1, 2])
def test_a_sync_of_several_windows_says_how_many_are_done_as_each_ends(
    tmp_path: Path, window_concurrency: int
) -> None:
    """Found by a new user: a backfill showed "syncing ..." and nothing more for minutes. The
    terminal's status line now moves as each window ends, one window at a time or several."""
    from omnisync.orchestration import WINDOWS, Local
    from omnisync.sync.run import run_sync
    from sandbox import SandboxServer
    from tests.sync.sandbox_runs import settings_for

    lines: list[str] = []
    with SandboxServer(customers=600, seed=5) as server:
        settings = settings_for(
            server,
            tmp_path,
            lag_seconds=0,
            window_rows=100,
            window_concurrency=window_concurrency,
        )
        outcome = run_sync(
            settings, False, Local(on_progress=lambda line, done: lines.append(line))
        )
    assert isinstance(outcome, dict)
    windows = outcome["windows"]
    assert windows >= 4, outcome
    said = [line for line in lines if line.startswith(f"{WINDOWS}: ")]
    assert said[0] == f"{WINDOWS}: 0 of {windows} (0%)"
    assert said[-1] == f"{WINDOWS}: {windows} of {windows} (100%)"
    counts = [int(line.split(": ")[1].split(" of ")[0]) for line in said]
    assert sorted(counts) == list(range(windows + 1)), "each window said once"
    assert any("left" in line for line in said), "the time left at the pace so far"


def test_a_window_that_failed_or_never_started_is_not_counted_as_done() -> None:
    from concurrent.futures import Future

    from omnisync.orchestration import WINDOWS, WindowsDone

    reports: list[tuple[str, int, int]] = []

    class Recording:
        def progress(self, key: str, done: int, total: int, rate: float | None = None) -> None:
            reports.append((key, done, total))

    ended = WindowsDone(Recording(), 3)  # type: ignore[arg-type]
    failed: Future[None] = Future()
    failed.set_exception(RuntimeError("window failed"))
    cancelled: Future[None] = Future()
    cancelled.cancel()
    done: Future[None] = Future()
    done.set_result(None)
    for future in (failed, cancelled, done):
        ended.one_if_done(future)
    assert reports == [(WINDOWS, 0, 3), (WINDOWS, 1, 3)]


def test_a_sync_flow_run_shows_its_windows_progress_as_an_artifact(
    prefect_api: str, tmp_path: Path
) -> None:
    from omnisync.orchestration import WINDOWS
    from sandbox import SandboxServer
    from tests.erp.test_reconcile import artifacts
    from tests.flows import sync_customers
    from tests.sync.sandbox_runs import settings_for

    with SandboxServer(customers=300, seed=5) as server:
        settings = settings_for(server, tmp_path, lag_seconds=0, window_rows=100)
        state = sync_customers(settings=settings, return_state=True)
    assert state.is_completed(), state
    assert state.result()["windows"] >= 2
    (progress,) = artifacts(WINDOWS, state)
    assert progress.data == 100.0, progress


def test_a_plan_an_earlier_run_left_is_counted_under_its_own_name_and_said_so() -> None:
    """Found by a review: a run finishing an earlier plan showed ``8 of 8 (100%)``, then its
    own plan from ``0 of 25``, the same progress going back. Each plan has its own count."""
    from omnisync.commands.sync import _said
    from omnisync.orchestration import RESUMED_WINDOWS, WINDOWS, WindowsDone

    reports: list[str] = []

    class Recording:
        def progress(self, key: str, done: int, total: int, rate: float | None = None) -> None:
            reports.append(progress_line(key, done, total))

    WindowsDone(Recording(), 8, resumed=True).one()  # type: ignore[arg-type]
    WindowsDone(Recording(), 25).one()  # type: ignore[arg-type]
    assert reports == [
        f"{RESUMED_WINDOWS}: 0 of 8 (0%)",
        f"{RESUMED_WINDOWS}: 1 of 8 (12%)",
        f"{WINDOWS}: 0 of 25 (0%)",
        f"{WINDOWS}: 1 of 25 (4%)",
    ]
    assert [_said(line) for line in reports[1::2]] == [
        "finishing the plan an earlier run left: windows 1 of 8 (12%)",
        "syncing: windows 1 of 25 (4%)",
    ]


def test_windows_ending_on_several_threads_never_move_the_count_back() -> None:
    """Found by a review: two windows ending at once could report ``2 of 5`` then ``1 of 5``."""
    import threading
    import time

    from omnisync.orchestration import WindowsDone

    said: list[int] = []

    class Recording:
        def progress(self, key: str, done: int, total: int, rate: float | None = None) -> None:
            time.sleep(0)  # lets another thread run here, as a status line's update may
            said.append(done)

    ended = WindowsDone(Recording(), 400)  # type: ignore[arg-type]
    start = threading.Barrier(8)

    def end_windows() -> None:
        start.wait()
        for _ in range(50):
            ended.one()

    threads = [threading.Thread(target=end_windows) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert said == list(range(401))


def test_a_step_with_nothing_left_says_so() -> None:
    """A write-back whose changes the ledger all holds done said ``0 of 0 (100%)``."""
    assert progress_line("erp-write-back", 0, 0, rate=10) == "erp-write-back: nothing left to do"


def test_a_sync_writing_to_a_log_says_its_progress_in_lines_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: with its output going to a log or a pipe (no status line there),
    a sync said nothing until its end. It now writes a progress line at most every
    LINE_EVERY seconds; a run shorter than that writes only its result."""
    from omnisync.commands import sync as command
    from sandbox import SandboxServer
    from tests.sync.sandbox_runs import cli_env, omnisync

    with SandboxServer(customers=600, seed=5) as server:
        env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_WINDOW_ROWS="100")
        quiet = omnisync(env, "sync")
        assert quiet.returncode == 0, quiet.stderr[-2000:]
        assert "syncing:" not in quiet.stderr, "a short run says only its result"
        monkeypatch.setattr(command, "LINE_EVERY", 0.0)
        env["OMNISYNC_LAKE"] = str(tmp_path / "lake2")
        env["OMNISYNC_STATE_URL"] = f"sqlite:///{tmp_path}/state2.db"
        done = omnisync(env, "sync")
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("syncing: windows")]
    assert len(said) >= 4 and said[-1].endswith("(100%)"), done.stderr
    # With the run's log at INFO, its own lines say the progress: not twice (a review)
    env.update(
        OMNISYNC_LAKE=str(tmp_path / "lake3"),
        OMNISYNC_STATE_URL=f"sqlite:///{tmp_path}/state3.db",
        OMNISYNC_LOG_LEVEL="INFO",
    )
    with SandboxServer(customers=600, seed=5) as server:
        env["OMNITRON_URL"] = server.url
        logged = omnisync(env, "sync")
    assert logged.returncode == 0, logged.stderr[-2000:]
    lines = logged.stderr.splitlines()
    assert not [line for line in lines if line.startswith("syncing: windows")], logged.stderr
    assert [line for line in lines if "sync-windows: " in line], logged.stderr
