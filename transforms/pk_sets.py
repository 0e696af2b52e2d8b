"""Sets of pks as sorted NumPy arrays, built and searched without the copies NumPy's set
functions make.

``np.unique`` of a million pks held about 37 MiB above the array it was given (a sorted copy,
its masks and indices), and ``np.isin`` against a lake's pks sorts both sides together unless
the pks are dense; at the end of a 1M sync that was the run's peak memory (docs/performance.md).
Here the pks are sorted in place and searched by bisection: one copy in all.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def sorted_unique(parts: Iterable[np.ndarray]) -> np.ndarray:
    """The distinct values of ``parts`` (int64), sorted: one concatenated array, sorted in
    place, then its first of each run of equal values."""
    arrays = list(parts)
    if not arrays:
        return np.zeros(0, np.int64)
    values = np.concatenate(arrays).astype(np.int64, copy=False)
    del arrays  # the parts are garbage once copied: the peak is the one array and its mask
    values.sort()
    if len(values) < 2:
        return values
    first = np.empty(len(values), dtype=np.bool_)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return values if first.all() else values[first]


def contains(held: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in ``held`` (sorted, as :func:`sorted_unique` makes it),
    found by bisection: no copy of ``held``."""
    if not len(held):
        return np.zeros(len(values), dtype=np.bool_)
    at = np.searchsorted(held, values)
    found: np.ndarray = held[np.minimum(at, len(held) - 1)] == values
    return found
