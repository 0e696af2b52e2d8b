"""The lake's files are written a row group at a time (``ROW_GROUP_ROWS``): the change log of a
window, a compacted month and a merged bucket hold the same rows in the same order as when each
was copied whole, and writing them holds one row group's copy, not the whole table's."""

from __future__ import annotations

import datetime as dt
import tempfile
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.lake import ChangeLog, LakeStorage, Snapshot, file_options
from omnisync.lake import storage as storage_module
from tests.fresh_interpreter import printed_by
from tests.lake.test_lake import versions
from transforms.versions import latest_per_pk, unique_versions

KEYS = ["pk", "modified_date", "_extracted_at", "first_name"]
LOGGED = ["pk", "modified_date", "first_name"]
#: (pk, minute) with minutes across three months, so windows and compactions span several
VERSIONS = st.lists(
    st.tuples(st.integers(1, 12), st.integers(-50_000, 50_000)), min_size=1, max_size=25
)


def _groups(path: str) -> list[int]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


@settings(max_examples=40, deadline=None)
@given(first=VERSIONS, second=VERSIONS)
def test_files_written_a_row_group_at_a_time_hold_what_the_whole_copy_held(
    first: list[tuple[int, int]], second: list[tuple[int, int]]
) -> None:
    with (
        tempfile.TemporaryDirectory() as root,
        mock.patch.object(file_options, "ROW_GROUP_ROWS", 3),
        mock.patch.object(storage_module, "ROW_GROUP_ROWS", 3),
    ):
        lake = LakeStorage(root)
        log, snapshot = ChangeLog(lake), Snapshot(lake, buckets=2)
        tables = [versions(first, run=1), versions(second, run=2)]
        for number, table in enumerate(tables):
            log.write_window(table, f"w{number}")
            snapshot.merge(table)
        both = pa.concat_tables(tables)
        for month in log.months():
            files = lake.files(f"customer_changes/modified_month={month}")
            for path in files:
                assert max(_groups(lake.path(path))) <= 3
        # a version logged by the first window is not logged again by the second: which
        # extraction's row is kept is not compared here (tests/lake/test_lake.py does)
        stamps = both["modified_date"]
        months = pa.compute.add(
            pa.compute.multiply(pa.compute.year(stamps), 100), pa.compute.month(stamps)
        )
        by_month = unique_versions(both.append_column("month", months), "month")
        expected = by_month.select(LOGGED).to_pylist()
        log.compact(before=dt.date(2100, 1, 1))
        logged = []
        for month in log.months():
            (path,) = lake.files(f"customer_changes/modified_month={month}")
            assert max(_groups(lake.path(path))) <= 3
            logged.extend(lake.read_table(path, LOGGED).to_pylist())
        assert logged == expected, "each version once, by month, then pk, newest first"
        latest = latest_per_pk(both)
        for bucket in range(2):
            path = f"customers/bucket={bucket}/part.parquet"
            if not lake.exists(path):
                continue
            assert max(_groups(lake.path(path))) <= 3
            want = latest.filter(pa.compute.equal(pa.compute.bit_wise_and(latest["pk"], 1), bucket))
            assert lake.read_table(path, KEYS).to_pylist() == want.select(KEYS).to_pylist()


def test_logging_a_window_holds_a_row_group_s_copy_not_the_window_s() -> None:
    """Arrow's peak while a 50,000-row window is logged, above what it held before (the pool's
    high-water mark, in a fresh interpreter): the whole window copied in month order, then
    written as one row group, reached 1.5 times the window's bytes; a row group at a time, 0.84."""
    script = (
        "import tempfile\n"
        "import numpy as np, pyarrow as pa\n"
        "from omnisync.memory import use_system_allocator\n"
        "from omnisync.lake import ChangeLog, LakeStorage\n"
        "use_system_allocator()\n"
        "n, rng = 50_000, np.random.default_rng(1)\n"
        "stamp = pa.timestamp('us', tz='UTC')\n"
        "table = pa.table({'pk': pa.array(rng.permutation(n) + 1, pa.int64()),\n"
        "    'modified_date': pa.array(1_700_000_000_000_000 + rng.integers(0, 10**9, n), stamp),\n"
        "    '_extracted_at': pa.array(np.full(n, 1_700_000_000_000_000), stamp),\n"
        "    'text': pa.array([f'customer {i} ' + 'x' * 200 for i in range(n)])})\n"
        "pool = pa.default_memory_pool()\n"
        "with tempfile.TemporaryDirectory() as root:\n"
        "    before = pool.bytes_allocated()\n"
        "    ChangeLog(LakeStorage(root)).write_window(table, 'w1')\n"
        "    print((pool.max_memory() - before) / table.nbytes)\n"
    )
    (ratio,) = printed_by(script)
    assert float(ratio) < 1.0


def test_a_window_of_many_small_months_copies_its_rows_in_blocks_not_month_by_month() -> None:
    """A take from a window's table (many chunks) costs about a millisecond whatever its size: a
    window spread over a hundred months, each taking its own rows, cost a tenth of a second more
    than one copy of the window. Its months are served from blocks of ``ROW_GROUP_ROWS``."""
    taken = []
    real = file_options.TakenRows._block

    def counted(self: file_options.TakenRows, number: int) -> pa.Table:
        taken.append(number)
        return real(self, number)

    minutes = [month * 31 * 24 * 60 for month in range(40)]  # 40 months, two versions each
    table = versions([(pk, minute) for minute in minutes for pk in (1, 2)])
    with (
        tempfile.TemporaryDirectory() as root,
        mock.patch.object(file_options.TakenRows, "_block", counted),
    ):
        log = ChangeLog(LakeStorage(root))
        assert log.write_window(table, "w") == 80
        assert len(log.months()) == 40
    assert sorted(set(taken)) == [0], "one block of rows served every month"


def test_a_table_of_many_chunks_is_joined_once_a_column_at_a_time() -> None:
    """A take from a column of many chunks joins them first, every time: blocks taken one after
    another from a month of many parts cost time in proportion to its rows for every block
    (0.45 CPU-s against 0.26 for a 200,000-row month). More than one block's rows are taken
    from the table joined once; and joining a column at a time holds one more column, not a
    second table, when nothing else holds the chunks (Arrow's high-water mark, in a fresh
    interpreter)."""
    chunked = pa.concat_tables(
        [pa.table({"pk": pa.array(range(i, i + 100))}) for i in range(0, 20_000, 100)]
    )
    one_block = pa.array(range(file_options.ROW_GROUP_ROWS), pa.int64())
    several = pa.array(range(file_options.ROW_GROUP_ROWS + 1), pa.int64())
    assert file_options.TakenRows(chunked, one_block).table.column("pk").num_chunks == 200
    assert file_options.TakenRows(chunked, several).table.column("pk").num_chunks == 1
    script = (
        "import pyarrow as pa\n"
        "from omnisync.memory import use_system_allocator\n"
        "from omnisync.lake.file_options import one_chunk\n"
        "use_system_allocator()\n"
        "def parts():\n"
        "    column = lambda i: pa.array([f'value {j} ' + 'x' * 100 for j in range(i, i + 1000)])\n"
        "    return pa.concat_tables([pa.table({f'c{k}': column(i) for k in range(8)})\n"
        "                             for i in range(0, 40_000, 1000)])\n"
        "pool = pa.default_memory_pool()\n"
        "table = parts(); size = table.nbytes; del table\n"
        "before = pool.bytes_allocated()\n"
        "joined = one_chunk(parts())\n"
        "print((pool.max_memory() - before) / size)\n"
    )
    (ratio,) = printed_by(script)
    assert float(ratio) < 1.5, "a second copy of the table"
