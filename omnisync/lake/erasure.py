"""Erasure (G9, ``OMNISYNC_ERASE_DELETED``): a customer deleted in Omnitron loses its personal
values everywhere the lake keeps a row of it, not only in ``customers/``.

Why nothing of such a customer is left, where it can be named by its ``pk``:

* **Every dataset that holds per-customer rows is looked at.** ``customer_changes/`` (every
  version ever read), ``quarantine/customers/`` (the raw JSON of records that could not be typed,
  and reasons that quote the bad value), and the reconciliation tables that hold a customer's
  match key (``plan.match_value``, ``erp_rows.key``, ``conflicts.key``) or a server's answer about
  it (``outcomes.detail``). ``customers/`` itself lost the rows before (the deletion's apply).
  The same datasets under ``_before_rebuild/`` (moved aside by a full refresh of an older lake,
  ``customers/`` included) are erased the same way.
* **Every file is looked at, by its ``pk`` column first.** Only a file holding one of the pks
  (and a value still to erase) is read whole and rewritten: through :class:`LakeStorage`, to a
  temporary name and renamed (or one PUT), each change fenced by the run's lock. Other files are
  not opened for writing: their bytes and times stay as they were.
* **Reports quote values, not rows.** ``_reports/`` holds HTML, CSV and JSON built from those
  tables (the reconciliation's reports, the validation results and their Data Docs). Every
  email, phone number and ERP match key of the customers is collected from the datasets first,
  then replaced by ``[erased]`` where a report's field holds it, each format read by its
  structure (``omnisync.lake.scrubbing``: JSON and CSV stay valid, other text stays whole).
* **Crash safety by order and idempotence.** Reports are scrubbed first, while the datasets
  still hold the values that find them; then the datasets. Erasing twice is erasing once: a file
  with nothing left to erase is not rewritten. The caller marks the deletions applied only after
  this returns, so a run killed in between erases the same pks again (``omnisync.sync.deletions``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.changes import DATASET as CHANGES
from omnisync.lake.quarantine import DATASET as QUARANTINE
from omnisync.lake.reconciliation import table_dataset
from omnisync.lake.scrubbing import scrub_reports
from omnisync.lake.snapshot import ASIDE
from omnisync.lake.snapshot import DATASET as SNAPSHOT
from omnisync.lake.storage import LakeStorage
from transforms.erasure import erase_columns, erase_quarantine, rows_of

log = logging.getLogger("omnisync.lake")
#: the columns whose values identify a person in a report's text (names are too common to
#: search for: they never appear in a report, which quotes match keys)
_QUOTED = ("email", "phone_number")

#: (dataset, columns that hold personal values whatever the settings say)
_RECONCILIATION = {
    "plan": ("match_value",),
    "erp_rows": ("key",),
    "conflicts": ("key",),
    "outcomes": ("detail",),
}


#: erases the rows a mask chooses in one file's table
Eraser = Callable[[pa.Table, pa.Array], pa.Table]


@dataclass
class Erased:
    """What one erasure changed: files rewritten per dataset, report files scrubbed."""

    files: dict[str, int]
    reports: int

    def total(self) -> int:
        return sum(self.files.values()) + self.reports


def _mask(table: pa.Table, pks: set[int]) -> pa.Array:
    if "pks" in table.column_names:  # conflicts: a row names every customer it concerns
        hits = [any(pk in pks for pk in row or ()) for row in table.column("pks").to_pylist()]
        return pa.array(hits, pa.bool_())
    return rows_of(table, pks)


def _affected(storage: LakeStorage, path: str, pks: set[int]) -> bool:
    """Whether the file holds a row of ``pks`` (its key column only is read)."""
    with storage.parquet_file(path) as file:
        key = "pks" if "pks" in file.schema_arrow.names else "pk"
        if key not in file.schema_arrow.names:
            return False
        column = file.read(columns=[key])
    return bool(pc.any(_mask(column, pks)).as_py())


def _datasets(columns: Collection[str]) -> list[tuple[str, Eraser]]:
    """Each dataset with per-customer rows, and how its chosen rows are erased."""
    found: list[tuple[str, Eraser]] = [
        (CHANGES, functools.partial(erase_columns, columns=columns)),
        (QUARANTINE, functools.partial(erase_quarantine, columns=columns)),
    ]
    for table, held in _RECONCILIATION.items():
        found.append((table_dataset(table), functools.partial(erase_columns, columns=held)))
    # What a full refresh of an older lake moved aside is kept for people: erased the same way
    # (its customers/ too, which the deletion itself does not touch).
    aside: list[tuple[str, Eraser]] = [
        (f"{ASIDE}/{SNAPSHOT}", functools.partial(erase_columns, columns=columns))
    ]
    aside += [(f"{ASIDE}/{dataset}", erase) for dataset, erase in found]
    return found + aside


def _quoted_values(table: pa.Table, mask: pa.Array, columns: Collection[str]) -> set[str]:
    """The strings of the chosen rows a report may quote."""
    values: set[str] = set()
    names = [n for n in _QUOTED if n in columns] + ["match_value", "key"]
    for name in names:
        if name in table.column_names and pa.types.is_string(table.schema.field(name).type):
            values.update(v for v in table.column(name).filter(mask).to_pylist() if v)
    if "raw" in table.column_names:
        raws = table.column("raw").combine_chunks()
        storage = raws.storage if isinstance(raws, pa.ExtensionArray) else raws
        for text in storage.filter(mask).to_pylist():
            try:
                # numbers as their own text: a quoted value is searched for as it was written
                record = json.loads(text, parse_float=str, parse_int=str) if text else None
            except ValueError:
                continue
            if isinstance(record, dict):
                values.update(
                    str(record[n])
                    for n in _QUOTED
                    if n in columns and record.get(n) not in (None, "")
                )
    return values


def erase_customers(storage: LakeStorage, pks: Collection[int], columns: Collection[str]) -> Erased:
    """Erase the personal values of ``pks`` from the lake's history (see the module's docstring);
    returns what was rewritten. Idempotent. Call it with the stream's lock held (the storage's
    guard set): every rewrite is fenced."""
    wanted = {int(pk) for pk in pks}
    erased = Erased({}, 0)
    if not wanted:
        return erased
    datasets = _datasets(columns)
    affected: list[tuple[str, str, Eraser]] = []
    values: set[str] = set()
    for dataset, erase in datasets:
        for path in storage.files(dataset):
            if _affected(storage, path, wanted):
                affected.append((dataset, path, erase))
                table = storage.read_table(path)
                values |= _quoted_values(table, _mask(table, wanted), columns)
    erased.reports = scrub_reports(storage, values)
    for dataset, path, erase in affected:
        table = storage.read_table(path)
        done = erase(table, _mask(table, wanted))
        if done.equals(table):
            continue  # erased before (a repeated run): not rewritten
        storage.write_table(path, done)
        erased.files[dataset] = erased.files.get(dataset, 0) + 1
    log.info(
        "erased %d deleted customer(s): %d file(s) rewritten, %d report(s) scrubbed",
        len(wanted),
        sum(erased.files.values()),
        erased.reports,
    )
    return erased
