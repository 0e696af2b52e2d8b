"""Choosing among versions of customers: pure functions over Arrow tables.

A *version* is a customer's row at one ``modified_date``. The change log keeps every version once;
the snapshot keeps each customer's latest. Ties (the same pk and ``modified_date`` seen twice, e.g.
re-read by the lookback) keep the row extracted last.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_ORDER = [("pk", "ascending"), ("modified_date", "descending"), ("_extracted_at", "descending")]


def _first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """True where a row starts a new run of equal keys (rows already sorted by those keys)."""
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=bool)
    changed = np.zeros(len(keys[0]), dtype=bool)
    changed[0] = True
    for key in keys:
        changed[1:] |= key[1:] != key[:-1]
    return changed


def _sorted(table: pa.Table) -> pa.Table:
    order = [(name, how) for name, how in _ORDER if name in table.column_names]
    return table.sort_by(order)


def _ints(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    values: np.ndarray = column.to_numpy()
    return values


def latest_per_pk(table: pa.Table) -> pa.Table:
    """One row per pk: the one with the greatest ``modified_date`` (G2), ordered by pk."""
    ordered = _sorted(table)
    return ordered.filter(pa.array(_first_of_runs(_ints(ordered, "pk"))))


def unique_versions(table: pa.Table) -> pa.Table:
    """One row per (pk, modified_date), ordered by pk then newest first."""
    ordered = _sorted(table)
    keep = _first_of_runs(_ints(ordered, "pk"), _ints(ordered, "modified_date"))
    return ordered.filter(pa.array(keep))
