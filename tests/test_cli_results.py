"""A command's result goes to stdout (a script reads it, a pipe takes it), everything else to
stderr: `sync`'s summary and `verify`'s verdict; progress, notes and log lines beside them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import SandboxServer
from tests.cli_runner import run_cli


def _env(server: SandboxServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "OMNITRON_URL": server.url,
        "OMNITRON_USERNAME": "sandbox",
        "OMNITRON_PASSWORD": "sandbox",
        "OMNISYNC_LAKE": str(tmp_path / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        **extra,
    }


def test_sync_and_verify_print_their_result_on_stdout_and_the_rest_on_stderr(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(customers=30)
    # log lines too: they must stay on stderr
    env = _env(server, tmp_path, OMNISYNC_LAG_SECONDS="0", OMNISYNC_LOG_LEVEL="INFO")
    synced = run_cli(env, "sync")
    assert synced.returncode == 0, synced.stderr
    said = synced.stdout.splitlines()
    assert said[0].startswith("ok 30 read, 30 new or changed, 0 deleted"), said
    assert "watermark none -> " in said[0], "a first run has no watermark yet: not Python's None"
    # as status writes it (a new user's tryout: +00:00 here, Z there)
    watermark = said[0].rpartition(" -> ")[2]
    assert watermark.endswith("Z") and watermark in run_cli(env, "status").stdout, watermark
    assert all(line.startswith(("ok ", "Data Docs: ")) for line in said), said
    assert " INFO " in synced.stderr and " INFO " not in synced.stdout

    # Found by a new user: the lookback's re-reads were counted as "written", so a run that
    # found nothing new said "ok 30 read, 30 written"
    again = run_cli({**env, "OMNISYNC_LOOKBACK_SECONDS": str(10**9)}, "sync")
    assert again.stdout.startswith("ok 30 read, 0 new or changed, 0 deleted"), again.stdout
    checked = run_cli(env, "verify")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("equal: the lake's 30 customers match Omnitron")
    assert len(checked.stdout.splitlines()) == 1 and "equal:" not in checked.stderr

    shown = run_cli({**env, "COLUMNS": "250"}, "status")
    last = shown.stdout.split("last verification", 1)[1].splitlines()[1]
    assert " verify " in last and "  equal, 30 checked" in last, shown.stdout

    assert server.admin.post("delete", json={"pks": [3, 4]}).json()["pks"] == [3, 4]
    again = run_cli(env, "sync")
    assert again.returncode == 0, again.stderr
    assert ", 2 deleted, " in again.stdout.splitlines()[0], again.stdout


def test_a_run_that_reads_nothing_says_when_recent_changes_will_be_read(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """With the default lag, a change made a moment ago is not read yet: the run says so, on
    stderr, instead of a bare line that looks like a sync that missed it (it reads only the
    customer at its watermark again)."""
    server = make_sandbox(customers=10)
    env = _env(server, tmp_path)
    first = run_cli(env, "sync")
    assert first.returncode == 0 and "next run" not in first.stderr, first.stderr
    server.admin.post("modify", json={"count": 1})
    again = run_cli(env, "sync")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("ok "), again.stdout
    note = " ".join(again.stderr.split())
    assert "OMNISYNC_LAG_SECONDS=60" in note and "next run" in note, again.stderr


def test_ctrl_c_in_verify_says_there_is_no_verdict_and_what_a_repair_left(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typer ends a command on Ctrl-C with exit 130 and not a word: a user could not tell a
    verification stopped from one that ended. Each command says what Ctrl-C left."""
    from omnisync.verify import checkup

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(checkup, "checkup", interrupted)
    server = make_sandbox(customers=30)
    env = _env(server, tmp_path)
    plain = run_cli(env, "verify")
    assert plain.returncode == 130, plain.stderr
    assert "stopped by Ctrl-C: no verdict, and nothing was changed" in plain.stderr
    repairing = run_cli(env, "verify", "--repair")
    assert repairing.returncode == 130, repairing.stderr
    assert "a repair already committed stays (run `omnisync verify --repair` again)" in (
        repairing.stderr
    )
    assert "Traceback" not in plain.stderr + repairing.stderr
