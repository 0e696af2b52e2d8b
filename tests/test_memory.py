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
