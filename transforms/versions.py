"""Choosing among versions of customers: pure functions over Arrow tables.

A *version* is a customer's row at one ``modified_date``. The change log keeps every version once;
the snapshot keeps each customer's latest. Ties (the same pk and ``modified_date`` seen twice, e.g.
re-read by the lookback) keep the row extracted last.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def _ints(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    values: np.ndarray = column.to_numpy()
    return values


def _first_in_order(table: pa.Table, keys: list[str], group: str | None = None) -> pa.Table:
    """The first row of each run of equal ``keys`` once the rows are in ``_ORDER`` (after the
    column ``group``, when given), in that order. Only the key columns are sorted: the whole
    table is copied once, by the final take (sorting it, then filtering it, copied it twice)."""
    return table.take(_rows_first_in_order(table, keys, group))


def _rows_first_in_order(table: pa.Table, keys: list[str], group: str | None) -> pa.Array:
    """The row numbers :func:`_first_in_order` takes, in its order."""
    sort_keys = [(name, how) for name, how in _ORDER if name in table.column_names]
    if group is not None:
        sort_keys = [(group, "ascending"), *sort_keys]
    order = pc.sort_indices(table.select([name for name, _ in sort_keys]), sort_keys=sort_keys)
    keep = _first_of_runs(*(_ints(table.column(name).take(order)) for name in keys))
    return order.filter(pa.array(keep))


def latest_per_pk(table: pa.Table) -> pa.Table:
    """One row per pk: the one with the greatest ``modified_date`` (G2), ordered by pk."""
    return _first_in_order(table, ["pk"])


def latest_rows(table: pa.Table) -> pa.Array:
    """The row numbers of :func:`latest_per_pk`, in its order."""
    return _rows_first_in_order(table, ["pk"], None)


def unique_versions(table: pa.Table, group: str | None = None) -> pa.Table:
    """One row per (pk, modified_date), ordered by pk then newest first; by the column ``group``
    first when given (its value must be the same for every row of a version: the month of its
    ``modified_date``, say)."""
    return _first_in_order(table, ["pk", "modified_date"], group)


def unique_version_rows(table: pa.Table, group: str | None = None) -> pa.Array:
    """The row numbers of :func:`unique_versions`, in its order, for a caller that takes the
    rows a part at a time instead of copying the whole table at once."""
    return _rows_first_in_order(table, ["pk", "modified_date"], group)
