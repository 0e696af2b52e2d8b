"""Staging is per plan (G5): a run removes staged files only of plans that are over."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from omnisync.lake import LakeStorage
from omnisync.state import StateStore
from omnisync.sync.context import STREAM
from omnisync.sync.staging import remove_finished_staging, staging_dir


def test_a_new_plan_removes_only_the_staging_of_plans_that_are_over(tmp_path: Path) -> None:
    """The staged rows of an open plan (one an interrupted or a frozen run may still resume or
    merge) and of a plan the store does not know stay; those of merged and abandoned plans go,
    hidden leftovers included."""
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    storage = LakeStorage(str(tmp_path / "lake"))
    for plan_id in ("open", "merged", "abandoned"):
        store.plans.save(STREAM, plan_id, [(0, 10), (10, 20)])
    store.plans.complete_window(STREAM, "open", 0, 1, 5)
    store.plans.close(STREAM, "merged")
    store.plans.abandon(STREAM, "abandoned")
    rows = pa.table({"pk": [1]})
    for plan_id in ("open", "merged", "abandoned", "unknown"):
        storage.write_table(f"{staging_dir(plan_id)}/w1.parquet", rows)
    storage.write_bytes(f"{staging_dir('merged')}/.w2.parquet.tmp-abc", b"left by a kill")

    remove_finished_staging(storage, store)

    left = sorted(p.name for p in (tmp_path / "lake" / staging_dir("x")).parent.iterdir())
    assert left == ["plan=open", "plan=unknown"]
    assert storage.files(staging_dir("open")) == [f"{staging_dir('open')}/w1.parquet"]


def test_a_staged_window_damaged_where_it_still_decodes_is_named_not_a_traceback(
    tmp_path: Path,
) -> None:
    """Staged windows carry page CRCs like the lake's files: a changed byte that still decodes
    is refused as damage (one line, naming the file and a full refresh), not a raw OSError."""
    import pyarrow.parquet as pq
    import pytest

    from omnisync.lake.errors import LakeDamaged
    from omnisync.sync.staging import remove_staged

    storage = LakeStorage(str(tmp_path / "lake"))
    name = f"{staging_dir('p1')}/window.parquet"
    table = pa.table({"pk": pa.array(range(1, 2001), pa.int64())})
    storage.write_row_groups(name, [table], scratch=True)
    path = tmp_path / "lake" / name
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    data = bytearray(path.read_bytes())
    data[column.data_page_offset + column.total_compressed_size - 8] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LakeDamaged, match="omnisync sync --full-refresh") as damaged:
        remove_staged(storage, [5])
    assert name in str(damaged.value) and "\n" not in str(damaged.value)


def _customers(pks: range) -> pa.Table:
    return pa.table(
        {
            "pk": pa.array(list(pks), pa.int64()),
            "modified_date": pa.array(
                [1_700_000_000_000_000] * len(pks), pa.timestamp("us", tz="UTC")
            ),
        }
    )


def test_a_window_is_staged_in_a_file_per_group_of_buckets_and_a_retry_replaces_them(
    tmp_path: Path,
) -> None:
    """A file for each group of buckets the window has rows in, each bucket its own row group;
    a retry with rows in fewer groups leaves no file of the first attempt behind (its rows
    would be merged back)."""
    import pyarrow.parquet as pq

    from omnisync.lake import Snapshot
    from omnisync.sync.staging import GROUP_BUCKETS, stage_window, staged_buckets

    storage = LakeStorage(str(tmp_path / "lake"))
    snapshot = Snapshot(storage, buckets=64)
    stage_window(storage, snapshot, "p1", "w", _customers(range(1, 1001)))
    files = storage.files(staging_dir("p1"))
    assert len(files) == 64 // GROUP_BUCKETS
    for name in files:
        with storage.parquet_file(name) as file:
            buckets = staged_buckets(file)
            assert len(buckets) == file.num_row_groups == GROUP_BUCKETS
            for index, bucket in enumerate(buckets):
                pks = file.read_row_group(index).column("pk").to_pylist()
                assert pks and all(pk % 64 == bucket for pk in pks)
    assert sum(pq.ParquetFile(tmp_path / "lake" / f).metadata.num_rows for f in files) == 1000

    stage_window(storage, snapshot, "p1", "w", _customers(range(64, 6400, 64)))  # bucket 0
    assert storage.files(staging_dir("p1")) == [f"{staging_dir('p1')}/w.g00.parquet"]
    stage_window(storage, snapshot, "p1", "w", _customers(range(0)))
    assert storage.files(staging_dir("p1")) == []


def test_the_merge_opens_one_group_of_staged_files_at_a_time_and_reads_an_older_layout(
    tmp_path: Path,
) -> None:
    """The merge holds the parsed metadata of one group's files, not every window's (each file
    open costs its metadata: 1.65 MiB for a window's 64 row groups); a window an earlier
    omnisync staged in one file of every bucket is merged all the same."""
    import contextlib

    import orjson

    from omnisync.lake import Snapshot
    from omnisync.sync.finish import merge_staged
    from omnisync.sync.staging import BUCKETS_KEY, GROUP_BUCKETS, stage_window

    storage = LakeStorage(str(tmp_path / "lake"))
    snapshot = Snapshot(storage, buckets=64)
    snapshot.ensure_current()
    for window in range(5):
        stage_window(storage, snapshot, "p1", f"w{window}", _customers(range(window, 3200, 5)))
    old = _customers(range(10_000, 10_640))  # every bucket, as one file
    parts = list(snapshot.split(old))
    metadata = {BUCKETS_KEY: orjson.dumps([bucket for bucket, _ in parts])}
    storage.write_row_groups(
        f"{staging_dir('p1')}/old.parquet",
        [part.replace_schema_metadata(metadata) for _, part in parts],
        scratch=True,
    )
    groups_open = 0  # row groups of the staged files open: what their parsed metadata holds
    most = 0
    real = storage.parquet_file

    @contextlib.contextmanager
    def counted(relative: str):  # type: ignore[no-untyped-def]
        nonlocal groups_open, most
        with real(relative) as file:
            groups_open += file.num_row_groups
            most = max(most, groups_open)
            try:
                yield file
            finally:
                groups_open -= file.num_row_groups

    storage.parquet_file = counted  # type: ignore[method-assign]
    assert merge_staged(storage, snapshot, "p1") == 64
    assert most == 5 * GROUP_BUCKETS + 64, "a group's files of each window, and the older file"
    held = sorted(snapshot.read(["pk"]).column("pk").to_pylist())
    assert held == [*range(3200), *range(10_000, 10_640)]
    assert GROUP_BUCKETS < 64


def test_a_staged_file_replaced_during_a_merge_is_read_by_its_own_bucket_list(
    tmp_path: Path,
) -> None:
    """Found by a review: the merge listed each staged file's buckets first and read row groups
    by that list later, from the file opened again; a file replaced in between (a window's late
    attempt) gave a bucket another bucket's rows, which would put a customer in two buckets.
    Each row group is found by the bucket list of the file actually opened."""
    from omnisync.lake import Snapshot
    from omnisync.sync.staging import stage_window, staged_by_bucket

    storage = LakeStorage(str(tmp_path / "lake"))
    snapshot = Snapshot(storage, buckets=16)
    stage_window(storage, snapshot, "p1", "w1", _pks([0, 8, 9]))
    merging = staged_by_bucket(storage, "p1", snapshot.buckets)
    first = next(merging)
    stage_window(storage, snapshot, "p1", "w1", _pks([0, 9, 10]))  # replaced meanwhile
    for bucket, groups in [first, *merging]:
        for group in groups:
            assert all(pk % 16 == bucket for pk in group.column("pk").to_pylist()), bucket


def _pks(pks: list[int]) -> pa.Table:
    table = _customers(range(len(pks)))
    return table.set_column(0, "pk", pa.array(pks, pa.int64()))
