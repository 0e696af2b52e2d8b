"""Until a first release, a lake of another format is refused in one line and rebuilt by a full
refresh, never converted (``omnisync/lake/snapshot.py``, docs/lake.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omnisync.lake import LakeStorage, Snapshot
from omnisync.lake.record import (
    ASIDE,
    FORMAT,
    RECORD,
    ForeignFolder,
    OldLake,
    check_format,
    lake_format,
)
from sandbox import SandboxServer
from tests.lake.test_lake import versions
from tests.lake.test_switches import crash_at_every_step, snapshot_pks
from tests.sync.sandbox_runs import TEST_BUCKETS, cli_env, omnisync, sync_ok

REBUILD = "rebuild it with `omnisync sync --full-refresh`"


def older_lake(root: Path) -> list[int]:
    """A lake as an earlier omnisync left it: datasets and its own records, no format record."""
    storage = LakeStorage(str(root))
    storage.write_table("customers/bucket=0/part.parquet", versions([(1, 0), (2, 0)]))
    storage.write_table(
        "customer_changes/modified_day=2026-03-01/part-w.parquet", versions([(1, 0)])
    )
    storage.write_json("_meta/customers-layout.json", {"buckets": 4})
    return [1, 2]


def test_a_brand_new_lake_gets_the_current_format(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path))
    assert lake_format(storage) == FORMAT, "nothing written yet: nothing to refuse"
    Snapshot(storage, buckets=8).ensure_current()
    assert storage.read_json(RECORD) == {"format": FORMAT, "buckets": 8}
    check_format(storage)


def test_a_lake_without_a_format_record_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    older_lake(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    storage = LakeStorage(str(tmp_path))
    for refuse in (check_format, lambda s: Snapshot(s, buckets=4).ensure_current()):
        with pytest.raises(OldLake, match="no format recorded") as refused:
            refuse(storage)
        assert str(refused.value).endswith(REBUILD) and "\n" not in str(refused.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("recorded", "said"),
    [(FORMAT - 1, REBUILD), (FORMAT + 1, "written by a newer omnisync")],
    ids=["lower", "higher"],
)
def test_a_lake_of_another_format_is_refused(tmp_path: Path, recorded: int, said: str) -> None:
    storage = LakeStorage(str(tmp_path))
    storage.write_json(RECORD, {"format": recorded, "buckets": 4})
    with pytest.raises(OldLake, match=f"format {recorded}") as refused:
        check_format(storage)
    assert said in str(refused.value)


def test_a_rebuild_moves_an_older_lake_aside_and_records_the_format(tmp_path: Path) -> None:
    older_lake(tmp_path)
    storage = LakeStorage(str(tmp_path))
    Snapshot(storage, buckets=4).ensure_current(rebuild=True)
    assert storage.read_json(RECORD) == {"format": FORMAT, "buckets": 4}
    assert not storage.files("customers") and not storage.files("customer_changes")
    assert snapshot_pks(tmp_path / ASIDE) == [1, 2], "the older lake is kept, out of the way"
    check_format(storage)


@pytest.mark.parametrize("swap", [True, False], ids=["atomic-swap", "object-store-fallback"])
def test_a_rebuild_interrupted_at_any_step_leaves_the_lake_refused_until_one_completes(
    tmp_path: Path, swap: bool
) -> None:
    def rebuild(storage: LakeStorage) -> None:
        Snapshot(storage, buckets=4).ensure_current(rebuild=True)

    def check(root: Path, expected: list[int]) -> None:
        storage = LakeStorage(str(root))
        if storage.read_json(RECORD) is None:
            with pytest.raises(OldLake):
                check_format(storage)
        else:
            assert not storage.files("customers"), "a current lake starts empty"
        if list((root / "customers").rglob("*.parquet")):
            pks = snapshot_pks(root)
            assert len(pks) == len(set(pks)) and set(pks) <= set(expected)

    steps = crash_at_every_step(older_lake, rebuild, check, tmp_path, swap)
    assert steps > 3, "the rebuild was interrupted at each of its steps"
    final = LakeStorage(str(tmp_path / f"crash-{steps}"))
    assert lake_format(final) == FORMAT
    assert snapshot_pks(tmp_path / f"crash-{steps}" / ASIDE) == [1, 2]


def one_line_refusal(done: Any) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    said = (done.stdout + done.stderr).strip()
    assert "Traceback" not in said
    assert said.count("\n") == 0 and said.endswith(REBUILD), said


def test_sync_refuses_an_older_lake_in_one_line_and_a_full_refresh_rebuilds_it(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server: SandboxServer = make_sandbox(customers=300, seed=23)
    env = cli_env(server, tmp_path, "", OMNISYNC_SNAPSHOT_BUCKETS="4")
    lake = tmp_path / "lake"
    older_lake(lake)
    one_line_refusal(omnisync(env, "sync"))
    one_line_refusal(omnisync(env, "verify"))
    erp = tmp_path / "erp.csv"
    erp.write_text("pk,erp_code\n1,A1\n")
    one_line_refusal(omnisync(env, "reconcile", "--erp-file", str(erp), "--dry-run"))
    assert not (lake / RECORD).exists(), "a refused run changes nothing"

    sync_ok(env, "--full-refresh")
    assert json.loads((lake / RECORD).read_text()) == {"format": FORMAT, "buckets": 4, "pii": {}}
    assert len(snapshot_pks(lake)) == 300, "rebuilt from Omnitron alone"
    assert not list((lake / "customer_changes").rglob("modified_day=*")), "nothing older is read"
    sync_ok(env)  # a current lake is accepted


def test_the_first_sync_records_the_format(make_sandbox: Any, tmp_path: Path) -> None:
    server: SandboxServer = make_sandbox(customers=50, seed=29)
    env = cli_env(server, tmp_path, "")
    sync_ok(env)
    record = json.loads((tmp_path / "lake" / RECORD).read_text())
    assert record == {"format": FORMAT, "buckets": TEST_BUCKETS, "pii": {}}, (
        "no column hashed or dropped"
    )


def test_the_bucket_count_of_a_lake_to_rebuild_does_not_stop_its_rebuild(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path))
    storage.write_json(RECORD, {"format": FORMAT - 1, "buckets": 4})
    snapshot = Snapshot(storage, buckets=8)  # opening an older lake with another count: fine
    snapshot.ensure_current(rebuild=True)
    assert storage.read_json(RECORD) == {"format": FORMAT, "buckets": 8}


def another_tools_folder(root: Path) -> list[Path]:
    """A folder some other tool filled: its own data, and a ``_meta/`` of its own."""
    (root / "_meta").mkdir(parents=True)
    (root / "_meta" / "tool.json").write_text('{"tool": "other"}')
    (root / "exports").mkdir()
    (root / "exports" / "orders.csv").write_text("id\n1\n")
    (root / "README.txt").write_text("not a lake")
    return sorted(root.rglob("*"))


def test_another_tools_folder_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    before = another_tools_folder(tmp_path)
    storage = LakeStorage(str(tmp_path))
    for refuse in (
        check_format,
        lambda s: Snapshot(s, buckets=4).ensure_current(),
        lambda s: Snapshot(s, buckets=4).ensure_current(rebuild=True),
    ):
        with pytest.raises(ForeignFolder) as refused:
            refuse(storage)
        said = str(refused.value)
        assert said.startswith(f"OMNISYNC_LAKE {str(tmp_path)!r} holds what omnisync did not")
        assert "README.txt, exports" in said and "\n" not in said
    assert sorted(tmp_path.rglob("*")) == before, "nothing moved aside, nothing written"


def test_a_full_refresh_into_another_tools_folder_is_refused_in_one_line(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server: SandboxServer = make_sandbox(customers=20, seed=23)
    env = cli_env(server, tmp_path, "", OMNISYNC_SNAPSHOT_BUCKETS="4")
    before = another_tools_folder(tmp_path / "lake")
    for args in (["sync", "--full-refresh"], ["sync"], ["verify"]):
        done = omnisync(env, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        said = (done.stdout + done.stderr).strip()
        assert said.count("\n") == 0 and "Traceback" not in said, said
        assert said.startswith("error: OMNISYNC_LAKE ") and "another tool's folder" in said
    assert sorted((tmp_path / "lake").rglob("*")) == before
    assert not (tmp_path / "lake" / ASIDE).exists()


def test_a_new_lake_may_start_in_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / ".keep").write_text("")  # hidden files do not count
    storage = LakeStorage(str(tmp_path))
    Snapshot(storage, buckets=4).ensure_current()
    assert storage.read_json(RECORD) == {"format": FORMAT, "buckets": 4}


def test_a_lake_path_that_holds_no_lake_is_refused_when_the_state_has_synced_one(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """A mistyped OMNISYNC_LAKE with the state of an existing lake: an incremental would write
    only what changed since the watermark there, a lake missing nearly every customer, and exit
    0. Sync and verify refuse it in one line naming OMNISYNC_LAKE; a full refresh builds it."""
    server: SandboxServer = make_sandbox(customers=200, seed=31)
    sync_ok(cli_env(server, tmp_path, ""))
    typo = tmp_path / "lakee"
    env = cli_env(server, tmp_path, "", OMNISYNC_LAKE=str(typo))
    for command in ("sync", "verify"):
        done = omnisync(env, command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "OMNISYNC_LAKE" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (typo / "customers").exists(), "nothing was written there"
    sync_ok(env, "--full-refresh")
    assert len(snapshot_pks(typo)) == 200


@pytest.mark.parametrize("command", [["sync"], ["verify"], ["reconcile", "--dry-run"]])
def test_a_lake_path_that_is_a_file_is_named_as_such_by_every_command(
    make_sandbox: Any, tmp_path: Path, command: list[str]
) -> None:
    server: SandboxServer = make_sandbox(customers=20)
    env = cli_env(server, tmp_path, "")
    (tmp_path / "lake").write_text("not a lake")
    args = (
        [*command, "--erp-file", str(tmp_path / "erp.csv")] if "reconcile" in command else command
    )
    (tmp_path / "erp.csv").write_text("pk,erp_code\n1,A\n")
    done = omnisync(env, *args)
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 2 and "Traceback" not in said, said
    assert "is a file, not a folder" in said, said
