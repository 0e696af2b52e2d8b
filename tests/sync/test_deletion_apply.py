"""G3 for deletions: a run killed while applying them leaves the next run to apply the same rows,
so the change log records each deletion once and ``customers/`` converges."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omnisync.lake import Snapshot
from omnisync.state.deletions import pending_deletions
from omnisync.sync.deletions import check_deletions
from omnisync.sync.parts import STREAM, RunParts
from sandbox import SandboxServer
from tests.sync.sandbox_runs import assert_lake_matches_truth, cli_env, settings_for, sync_ok
from tests.sync.test_deletions import deletion_rows

Make = Callable[..., SandboxServer]


class Killed(Exception):
    """Stands for the process dying at this point."""


@pytest.mark.parametrize("dies", ["before-the-change-log", "before-customers"])
def test_a_deletion_interrupted_anywhere_is_applied_once_by_the_next_run(
    prefect_api: str,
    make_sandbox: Make,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dies: str,
) -> None:
    server = make_sandbox(customers=300, seed=23)
    env = cli_env(server, tmp_path, prefect_api, OMNISYNC_LAG_SECONDS="0")
    sync_ok(env)
    gone = server.admin.post("delete", json={"pks": [5, 77, 150]}).json()["pks"]
    assert gone == [5, 77, 150]

    def killed(*_: object, **__: object) -> None:
        raise Killed

    if dies == "before-the-change-log":
        monkeypatch.setattr("omnisync.lake.changes.ChangeLog.write_window", killed)
    else:
        monkeypatch.setattr(Snapshot, "remove", killed)
    parts = RunParts.open(settings_for(server, tmp_path, lag_seconds=0), "killed", validate=False)
    try:
        with parts.store.lease.locked(STREAM, wait_seconds=0, run_id="killed") as fence:
            parts.hold(fence)
            with pytest.raises(Killed):
                check_deletions(parts, parts.client.server_time(), full_refresh=False)
            assert sorted(d.pk for d in pending_deletions(parts.store, STREAM)) == gone
    finally:
        parts.close()
    monkeypatch.undo()
    sync_ok(env)
    lake = str(tmp_path / "lake")
    assert_lake_matches_truth(server, lake)
    assert deletion_rows(lake) == gone, "each deletion logged exactly once"
