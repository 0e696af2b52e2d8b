"""What a run does to give memory back: Arrow on the C allocator, glibc's free heap trimmed."""

from __future__ import annotations

import sys

from tests.fresh_interpreter import printed_by


def test_a_run_puts_arrow_on_the_c_allocator_and_trims_after_a_window() -> None:
    """In a fresh interpreter: Arrow leaves its default pool (mimalloc or jemalloc) for the C
    allocator, twice asked is once done, and giving memory back after a window calls glibc's
    ``malloc_trim`` here (elsewhere it does nothing)."""
    script = (
        "import pyarrow as pa\n"
        "from omnisync import memory\n"
        "memory.use_system_allocator(); memory.use_system_allocator()\n"
        "memory.give_back()\n"
        "print(pa.default_memory_pool().backend_name, memory._MALLOC_TRIM is not None)\n"
    )
    pool, trims = printed_by(script)
    assert pool == "system"
    if sys.platform.startswith("linux"):
        assert trims == "True", "glibc's malloc_trim was not found"


def test_reading_the_lake_does_not_load_pyarrow_dataset(tmp_path: object) -> None:
    """``pq.read_table`` and ``Table.join`` load ``pyarrow.dataset``, whose libraries (Acero,
    Substrait) add about 50 MiB to a process: the lake reads its files one by one, and the
    change log finds the versions it logged already (a window overlapping another), without."""
    script = (
        "import datetime, sys\n"
        "import pyarrow as pa\n"
        "from omnisync.lake import LakeStorage\n"
        "storage = LakeStorage(sys.argv[1])\n"
        "storage.write_table('a/f.parquet', pa.table({'pk': [1, 2], 'x': ['a', None]}))\n"
        "table = storage.read_table('a/f.parquet', columns=['pk'])\n"
        "from omnisync.lake import ChangeLog\n"
        "from sandbox.seed import seed_customers\n"
        "from transforms.customers import Lineage, to_table\n"
        "records = [dict(c.data) for c in seed_customers(3, 5)]\n"
        "lineage = Lineage('run', datetime.datetime.now(datetime.UTC), 'https://o.test')\n"
        "log = ChangeLog(storage)\n"
        "log.write_window(to_table(records[:2], lineage).table, 'w1')\n"
        "again = log.write_window(to_table(records[1:], lineage).table, 'w2')\n"
        "print(table.column_names, table.num_rows, again, 'pyarrow.dataset' in sys.modules)\n"
    )
    assert printed_by(script, str(tmp_path)) == ["['pk']", "2", "1", "False"]
