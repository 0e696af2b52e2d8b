"""Sets of pks built and searched in place (``transforms/pk_sets.py``): the same answers as
NumPy's set functions, with one copy of the pks instead of several."""

from __future__ import annotations

import tracemalloc

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from transforms.pk_sets import contains, sorted_unique

pks = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60)


@given(st.lists(pks, max_size=5), pks)
def test_the_same_sets_as_numpy(parts: list[list[int]], asked: list[int]) -> None:
    arrays = [np.array(part, dtype=np.int64) for part in parts]
    held = sorted_unique(arrays)
    expected = np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, np.int64)
    assert held.dtype == np.int64
    assert held.tolist() == expected.tolist()
    values = np.array(asked, dtype=np.int64)
    assert contains(held, values).tolist() == np.isin(values, expected).tolist()


def test_a_million_pks_cost_one_copy_and_a_mask_not_numpys_several() -> None:
    """At the end of a 1M sync ``np.unique`` of the lake's pks was the run's peak: about 37 MiB
    above the 8 MB of pks. Counted by tracemalloc (NumPy reports its buffers to it): the parts,
    their one sorted copy, its mask and the result."""
    rng = np.random.default_rng(7)
    parts = [rng.integers(0, 2_000_000, 15_625, dtype=np.int64) for _ in range(64)]
    size = sum(part.nbytes for part in parts)  # 8 MB
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        held = sorted_unique(parts)
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        contains(held, parts[0])
        searched = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak <= 2.2 * size, f"{peak / size:.2f}x the pks"
    assert searched <= 4 * parts[0].nbytes, "a search copies no more than the values asked"
