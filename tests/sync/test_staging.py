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
