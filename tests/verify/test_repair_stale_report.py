"""``verify --repair`` never acts on a report that went out of date: a sync after it may have
applied the deletions it found (a sync that read nothing new leaves the watermark unchanged),
and a file it called unreadable may have been replaced since."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from omnisync.lake import LakeStorage
from omnisync.orchestration import Local
from omnisync.sync.run import run_sync
from omnisync.verify.repair import repair
from omnisync.verify.run import run_verify
from tests.sync.sandbox_runs import cli_env, omnisync
from tests.sync.test_deletions import deletion_rows


def test_a_deletion_the_sync_applied_after_the_report_is_not_logged_again(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0")
    assert omnisync(env, "sync").returncode == 0
    lake = str(tmp_path / "lake")
    gone = sorted(pq.read_table(f"{lake}/customers")["pk"].to_pylist())[20]
    assert server.admin.post("delete", json={"pks": [gone]}).json()["pks"] == [gone]
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-2000:]
    synced = omnisync(env, "sync")  # reads nothing new; its deletion check applies the deletion
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert deletion_rows(lake) == [gone]
    repaired = omnisync(env, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert deletion_rows(lake) == [gone]  # logged once


def test_a_repair_with_an_old_report_removes_only_what_is_still_wrong(
    make_sandbox: Any, tmp_path: Path
) -> None:
    from tests.sync.sandbox_runs import settings_for

    server = make_sandbox(customers=300)
    current = settings_for(server, tmp_path, lag_seconds=0)
    assert isinstance(run_sync(current, False, Local()), dict)
    gone = sorted(pq.read_table(f"{current.lake}/customers")["pk"].to_pylist())[20]
    assert server.admin.post("delete", json={"pks": [gone]}).json()["pks"] == [gone]
    old = run_verify(current)
    assert old.found["deleted"] == [gone]
    assert isinstance(run_sync(current, False, Local()), dict)
    healthy = LakeStorage(current.lake).files("customers")[0]
    rows = pq.read_table(Path(current.lake, healthy)).num_rows
    stale = dataclasses.replace(old, unreadable={healthy: "ArrowInvalid: it was, once"})
    counts = repair(current, stale)
    assert counts["deleted"] == 0 and counts["files_removed"] == 0
    assert deletion_rows(current.lake) == [gone]
    assert pq.read_table(Path(current.lake, healthy)).num_rows == rows
