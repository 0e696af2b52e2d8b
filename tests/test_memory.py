"""What a run does to give memory back: Arrow on the C allocator, glibc's free heap trimmed."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.fresh_interpreter import printed_by


def test_a_run_puts_arrow_on_the_c_allocator_and_trims_after_a_window() -> None:
    """In a fresh interpreter that loaded pyarrow before omnisync: pyarrow leaves its default
    pool (mimalloc or jemalloc) for the C allocator and the run says, once, how to move Arrow's
    C++ code too; giving memory back after a window calls glibc's ``malloc_trim`` here
    (elsewhere it does nothing)."""
    script = (
        "import logging, os\n"
        "os.environ.pop('ARROW_DEFAULT_MEMORY_POOL', None)\n"
        "import pyarrow as pa\n"
        "from omnisync import memory\n"
        "said = []\n"
        "handler = logging.Handler(); handler.emit = lambda r: said.append(r.getMessage())\n"
        "logging.getLogger('omnisync').addHandler(handler)\n"
        "logging.getLogger('omnisync').setLevel(logging.INFO)\n"
        "memory.use_system_allocator(); memory.use_system_allocator()\n"
        "memory.give_back()\n"
        "hints = [m for m in said if 'ARROW_DEFAULT_MEMORY_POOL=system' in m]\n"
        "print(pa.default_memory_pool().backend_name, memory._MALLOC_TRIM is not None, len(hints))\n"
    )
    pool, trims, hints = printed_by(script)
    assert pool == "system"
    assert hints == "1"
    if sys.platform.startswith("linux"):
        assert trims == "True", "glibc's malloc_trim was not found"


def test_arrow_code_allocates_from_the_c_allocator_once_omnisync_is_imported(
    tmp_path: object,
) -> None:
    """``pa.set_memory_pool`` moves only pyarrow's Python-level calls: the Parquet reader and
    writer and the compute kernels allocate from Arrow's own default pool, which mimalloc kept
    about 30 MiB of at a sync's peak. Importing omnisync first puts them on the C allocator too:
    mimalloc is never used by a write, a read and a sort of the lake."""
    script = (
        "import os, sys\n"
        "os.environ.pop('ARROW_DEFAULT_MEMORY_POOL', None)\n"
        "from omnisync.lake import LakeStorage\n"
        "import pyarrow as pa\n"
        "from transforms.versions import latest_per_pk\n"
        "storage = LakeStorage(sys.argv[1])\n"
        "rows = pa.table({'pk': list(range(50_000)) * 2, 'name': [str(i) for i in range(100_000)],"
        " 'modified_date': pa.array(range(100_000), pa.timestamp('us', tz='UTC'))})\n"
        "storage.write_table('a/f.parquet', rows)\n"
        "latest = latest_per_pk(storage.read_table('a/f.parquet'))\n"
        "print(latest.num_rows, pa.mimalloc_memory_pool().max_memory(),"
        " pa.system_memory_pool().max_memory() > 0)\n"
    )
    assert printed_by(script, str(tmp_path)) == ["50000", "0", "True"]


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


def test_before_a_long_plan_large_blocks_stay_mapped_after_glibc_freed_a_larger_one() -> None:
    """glibc raises its threshold for mapping a block on its own each time it frees one, after
    which a window's column buffers came from a thread's heap and stayed resident there. After a
    short plan's call glibc's own rule holds (a 1 MiB block after an 8 MiB one was freed comes
    from the heap); after a long plan's, that block is mapped on its own (``mallinfo2``'s count
    of mapped blocks goes up by one)."""
    if not sys.platform.startswith("linux"):
        return  # glibc's own behaviour: nothing to fix elsewhere
    script = (
        "import ctypes, sys\n"
        "from omnisync import memory\n"
        "names = 'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'\n"
        "class Info(ctypes.Structure):\n"
        "    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]\n"
        "libc = ctypes.CDLL(None); libc.mallinfo2.restype = Info\n"
        "memory.map_large_blocks(memory.LONG_PLAN_WINDOWS + int(sys.argv[1]))\n"
        "big = bytearray(8 << 20); del big\n"
        "before = libc.mallinfo2().hblks\n"
        "block = bytearray(1 << 20)\n"
        "print(libc.mallinfo2().hblks - before)\n"
    )
    # each in a fresh interpreter: a block freed in the heap serves the next request first
    (short,) = printed_by(script, "0")
    (long,) = printed_by(script, "1")
    assert short == "0", "glibc's own rule (the reason for the call) no longer holds"
    assert long == "1", "the 1 MiB block came from the heap"


def test_a_dask_worker_of_a_long_plan_maps_large_blocks_as_the_flow_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window on a Dask worker runs in another process than the flow's: the worker is told
    the plan's number of windows and fixes glibc's threshold itself before a long plan (it was
    fixed only in the flow's process, so a worker's heaps grew with the windows it served)."""
    from omnisync import memory
    from omnisync.sync import context as contexts

    asked: list[tuple[int, int]] = []
    monkeypatch.setattr(memory, "_MALLOPT", lambda option, value: asked.append((option, value)))

    class Runs:  # the worker's contexts, stood in for: only the threshold is looked at here
        def context(self, *args: object) -> Any:
            return SimpleNamespace(datetimes=True)

    monkeypatch.setattr(contexts, "_worker_runs", Runs())
    contexts.worker_context(cast(Any, None), "run", None, True, windows=memory.LONG_PLAN_WINDOWS)
    assert asked == [], "a short plan keeps glibc's own rule"
    contexts.worker_context(cast(Any, None), "run", None, True, windows=28)
    assert asked == [(memory._M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD)]
