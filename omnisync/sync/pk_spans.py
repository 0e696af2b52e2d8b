"""What one list answer for a ``pk`` range proves about the customers in it.

An answer holds its range whole only when it has no ``next`` and no more ``count`` than rows
received. Even then it proves a pk absent only if every record it holds names its pk as an
integer: a record whose pk cannot be read (``"pk": "5"``, no pk at all) may be any candidate of
the range, so such an answer proves nothing absent, and its candidates are asked about one by
one (``absence.py``), or kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omnisync.client import Page


def within(pks: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    """The ``pks`` (sorted) in ``[lo, hi)``."""
    start = 0 if lo is None else int(np.searchsorted(pks, lo, "left"))
    stop = len(pks) if hi is None else int(np.searchsorted(pks, hi, "left"))
    return pks[start:stop]


def complete(page: Page | None) -> bool:
    """Whether one answer holds its whole range (None: the range is empty)."""
    return page is None or page.complete


def readable_pk(record: Any) -> int | None:
    pk = record.get("pk") if isinstance(record, dict) else None
    return pk if isinstance(pk, int) and not isinstance(pk, bool) else None


def listed_pks(results: list[Any]) -> set[int] | None:
    """Every pk ``results`` name, or None when one record's pk cannot be read as an integer."""
    found = {readable_pk(record) for record in results}
    if None in found:
        return None
    return {pk for pk in found if pk is not None}


def proven(page: Page | None) -> set[int] | None:
    """The pks a whole answer holds (what it proves absent is every other pk of its range), or
    None when it proves nothing absent: not whole, or a record's pk cannot be read."""
    if page is None:
        return set()
    return listed_pks(page.results) if complete(page) else None


def cuts(held: np.ndarray, parts: int) -> list[int]:
    """``parts - 1`` cuts at the lake's pk quantiles (each above the range's least pk)."""
    return sorted({int(held[len(held) * k // parts]) for k in range(1, parts)} - {int(held[0])})
