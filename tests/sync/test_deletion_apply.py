"""G3 for deletions: a run killed while applying them leaves the next run to apply the same rows,
so the change log records each deletion once and ``customers/`` converges."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from omnisync.lake import Snapshot
from omnisync.lake.snapshot import bucket_path
from omnisync.state.deletions import pending_deletions
from omnisync.sync import sync_window
from omnisync.sync.context import STREAM, open_run
from sandbox import SandboxServer
from tests.lake.test_erasure import leaks
from tests.sync.sandbox_runs import (
    TEST_BUCKETS,
    assert_lake_matches_truth,
    cli_env,
    omnisync,
    settings_for,
    sync_ok,
    wait_for_server_clock,
)
from tests.sync.steps import deletions_checked, plan_for
from tests.sync.test_bad_input import corrupt
from tests.sync.test_deletions import deletion_rows, runs

Make = Callable[..., SandboxServer]
BACK = 42
BACK_EMAIL = "comes.back.4417@example.test"


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
    with open_run(settings_for(server, tmp_path, lag_seconds=0), "killed", validate=False) as parts:
        with parts.store.lease.locked(STREAM, wait_seconds=0, run_id="killed") as fence:
            parts = parts.holding(fence)
            with pytest.raises(Killed):
                deletions_checked(parts, parts.client.server_time())
            assert sorted(d.pk for d in pending_deletions(parts.store, STREAM)) == gone
    monkeypatch.undo()
    sync_ok(env)
    lake = str(tmp_path / "lake")
    assert_lake_matches_truth(server, lake)
    assert deletion_rows(lake) == gone, "each deletion logged exactly once"


def _customers(lake: str) -> list[int]:
    return sorted(pq.read_table(f"{lake}/customers").column("pk").to_pylist())


def test_a_deleted_customer_that_an_open_plan_brings_back_is_deleted_and_erased_again(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A run stages pk 42's new version and dies before merging it; 42 is deleted in Omnitron
    and ``verify --repair`` applies and erases the deletion; the staged version must not
    bring 42 back for good, with its email, when the plan is finished."""
    server = make_sandbox(customers=300, seed=29)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED="true")
    lake = str(tmp_path / "lake")
    sync_ok(env)
    corrupt(server, BACK, email=BACK_EMAIL)
    wait_for_server_clock(server, 0)
    settings = settings_for(server, tmp_path, lag_seconds=0, erase_deleted=True)
    with open_run(settings, "interrupted") as parts:
        with parts.store.lease.locked(STREAM, wait_seconds=0, run_id="interrupted") as fence:
            parts = parts.holding(fence)
            plan = plan_for(parts)
            for lo, hi in plan.windows:
                sync_window(parts, plan.plan_id, lo, hi)
            # the run dies here, before finish_plan: the new version is staged, not merged
    assert any("_staging" in leak for leak in leaks(tmp_path / "lake", (BACK_EMAIL,)))
    assert server.admin.post("delete", json={"pks": [BACK]}).json()["pks"] == [BACK]
    done = omnisync(env, "verify", "--repair")
    assert done.returncode == 0, done.stderr[-3000:]
    assert BACK not in _customers(lake)
    sync_ok(env)
    sync_ok(env)
    assert BACK not in _customers(lake)
    assert leaks(tmp_path / "lake", (BACK_EMAIL,)) == []
    log = runs(tmp_path)
    assert log[0]["counts"]["deleted"] == 0, "nothing new to delete: none reported"
    assert_lake_matches_truth(server, lake)


def test_a_deleted_customer_whose_row_comes_back_leaves_again_and_is_logged_again(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A row of a customer whose deletion was applied comes back into ``customers/`` (here: a
    bucket file restored from a backup): the next run deletes it again, logs a second
    ``_op = 'delete'`` row and counts it once; the run after that reports nothing."""
    server = make_sandbox(customers=300, seed=37)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0")
    lake = str(tmp_path / "lake")
    sync_ok(env)
    bucket = tmp_path / "lake" / bucket_path(BACK % TEST_BUCKETS)
    backup = bucket.read_bytes()
    assert server.admin.post("delete", json={"pks": [BACK]}).json()["pks"] == [BACK]
    sync_ok(env)
    assert BACK not in _customers(lake) and deletion_rows(lake) == [BACK]
    assert runs(tmp_path)[0]["counts"]["deleted"] == 1
    bucket.write_bytes(backup)
    assert BACK in _customers(lake)
    sync_ok(env)
    assert BACK not in _customers(lake)
    assert deletion_rows(lake) == [BACK, BACK], "the second deletion is logged too"
    assert runs(tmp_path)[0]["counts"]["deleted"] == 1
    sync_ok(env)
    assert runs(tmp_path)[0]["counts"]["deleted"] == 0
    assert deletion_rows(lake) == [BACK, BACK]
