"""Erasure (G9, ``OMNISYNC_ERASE_DELETED``): a customer deleted in Omnitron loses its personal
values everywhere the lake keeps a row of it, not only in ``customers/``.

Why nothing of such a customer is left, where it can be named by its ``pk``:

* **Every dataset that holds per-customer rows is looked at.** ``customer_changes/`` (every
  version ever read), ``quarantine/customers/`` (the raw JSON of records that could not be typed,
  and reasons that quote the bad value), and the reconciliation tables that hold a customer's
  match key (``plan.match_value``, ``erp_rows.key``, ``conflicts.key``) or a server's answer about
  it (``outcomes.detail``), and a compaction of the change log being built under ``_staging/``.
  ``customers/`` itself lost the rows before (the deletion's apply), and so did the windows a
  plan staged (``omnisync.sync.staging``).
  The same datasets under ``_before_rebuild/`` (moved aside by a full refresh of an older lake,
  ``customers/`` included) are erased the same way.
* **Only what is the customer's.** A conflict names every customer it concerns (``pks``): its
  match key is erased once every one of them is deleted (``gone`` tells which other customers'
  deletions are recorded); while one lives the key is that customer's too and stays, in the
  datasets and in the reports. The ERP row of an ambiguous match has no ``pk``: its key goes
  with the key of the conflict of the same run.
* **Every file is looked at, by its ``pk`` column first.** Only a file holding one of the pks
  (and a value still to erase) is read whole and rewritten: through :class:`LakeStorage`, to a
  temporary name and renamed (or one PUT), each change fenced by the run's lock. Other files are
  not opened for writing: their bytes and times stay as they were.
* **Reports quote values, not rows.** ``_reports/`` holds HTML, CSV and JSON built from those
  tables (the reconciliation's reports, the validation results and their Data Docs). Every
  email, phone number and ERP match key of the customers is collected from the datasets first
  (but a key a live customer shares), then replaced by ``[erased]`` where a report's field holds
  it, each format read by its structure (``omnisync.lake.scrubbing``: JSON and CSV stay valid,
  other text stays whole).
* **Crash safety by order and idempotence.** Reports are scrubbed first, while the datasets
  still hold the values that find them; then the datasets. Erasing twice is erasing once: a file
  with nothing left to erase is not rewritten; conflicts are rewritten last, so a repeated run
  still finds the ERP rows their keys name. The caller marks the deletions applied only after
  this returns, so a run killed in between erases the same pks again (``omnisync.sync.deletions``).
"""

from __future__ import annotations

import functools
import json
import logging
import posixpath
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.changes import COMPACTING
from omnisync.lake.changes import DATASET as CHANGES
from omnisync.lake.quarantine import DATASET as QUARANTINE
from omnisync.lake.reconciliation import table_dataset
from omnisync.lake.record import ASIDE
from omnisync.lake.scrubbing import scrub_reports
from omnisync.lake.snapshot import DATASET as SNAPSHOT
from omnisync.lake.storage import LakeStorage
from transforms.erasure import erase_columns, erase_quarantine, rows_of

log = logging.getLogger("omnisync.lake")
#: the columns whose values identify a person in a report's text (names are too common to
#: search for: they never appear in a report, which quotes match keys)
_QUOTED = ("email", "phone_number")

#: (dataset, columns that hold personal values whatever the settings say)
#: conflicts before erp_rows: a conflict tells which ERP rows' keys are the customers'
_RECONCILIATION = {
    "plan": ("match_value",),
    "conflicts": ("key",),
    "erp_rows": ("key",),
    "outcomes": ("detail",),
}


#: erases the rows a mask chooses in one file's table
Eraser = Callable[[pa.Table, pa.Array], pa.Table]
#: which of some pks (other than those being erased) a deletion is recorded for
Gone = Callable[[Collection[int]], Collection[int]]


@dataclass
class Erased:
    """What one erasure changed: files rewritten per dataset, report files scrubbed."""

    files: dict[str, int]
    reports: int

    def total(self) -> int:
        return sum(self.files.values()) + self.reports


def _run_of(path: str) -> str:
    """The reconciliation run a table's file belongs to (``<where>/<table>/run=<id>/...``):
    the same for each table of one run, in the lake and moved aside."""
    folder = posixpath.dirname(path)
    return f"{posixpath.dirname(posixpath.dirname(folder))}|{posixpath.basename(folder)}"


class _Scope:
    """Which rows belong to the customers being erased.

    A row of a customer (``pk``) is theirs. A conflict names every customer it concerns
    (``pks``): its match key is theirs only once every customer it names is deleted; while
    one of them lives the key is that customer's too, and the row stays as it is. The ERP row
    of an ambiguous match names no customer: it is theirs when the conflict of the same run
    and key is."""

    def __init__(self, wanted: set[int], gone: Gone) -> None:
        self.wanted, self._gone = wanted, gone
        self._deleted = set(wanted)
        self._asked: set[int] = set()
        #: the ambiguous keys erased, by run; the keys kept because a live customer shares them
        self.ambiguous: dict[str, set[str]] = {}
        self.shared: set[str] = set()

    def _all_deleted(self, pks: list[int]) -> bool:
        unknown = {pk for pk in pks if pk not in self._deleted and pk not in self._asked}
        if unknown:
            self._asked |= unknown
            self._deleted |= set(self._gone(sorted(unknown)))
        return all(pk in self._deleted for pk in pks)

    def mask(self, table: pa.Table, path: str) -> pa.Array:
        if "pks" in table.column_names:  # conflicts
            return self._conflicts(table, path)
        mask = rows_of(table, self.wanted)
        keys = self.ambiguous.get(_run_of(path))
        if keys and "key" in table.column_names:  # erp_rows of an ambiguous match
            theirs = pc.and_(
                pc.is_null(table.column("pk")),
                pc.is_in(table.column("key"), value_set=pa.array(sorted(keys), pa.string())),
            )
            mask = pc.or_(mask, pc.fill_null(theirs, False)).combine_chunks()
        return mask

    def _conflicts(self, table: pa.Table, path: str) -> pa.Array:
        hits = []
        for row in table.select(["pks", "key", "kind"]).to_pylist():
            pks = [pk for pk in row["pks"] or () if pk is not None]
            hit = any(pk in self.wanted for pk in pks)
            if hit and not self._all_deleted(pks):
                hit = False
                if row["key"]:
                    self.shared.add(row["key"])
            if hit and row["kind"] == "ambiguous_match" and row["key"]:
                self.ambiguous.setdefault(_run_of(path), set()).add(row["key"])
            hits.append(hit)
        return pa.array(hits, pa.bool_())


def _affected(storage: LakeStorage, path: str, scope: _Scope) -> bool:
    """Whether the file holds a row of the customers (only its key columns are read)."""
    with storage.parquet_file(path) as file:
        names = file.schema_arrow.names
        if "pks" in names:
            columns = ["pks", "key", "kind"]
        elif "pk" in names:
            columns = ["pk", "key"] if "key" in names else ["pk"]
        else:
            return False
        with storage.reading(path):
            table = file.read(columns=columns)
    return bool(pc.any(scope.mask(table, path)).as_py())


def _datasets(columns: Collection[str]) -> list[tuple[str, Eraser]]:
    """Each dataset with per-customer rows, and how its chosen rows are erased."""
    found: list[tuple[str, Eraser]] = [
        (CHANGES, functools.partial(erase_columns, columns=columns)),
        # a compaction being built (or left by a crash) holds change-log rows too
        (COMPACTING, functools.partial(erase_columns, columns=columns)),
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


def erase_customers(
    storage: LakeStorage,
    pks: Collection[int],
    columns: Collection[str],
    gone: Gone = lambda _: (),
) -> Erased:
    """Erase the personal values of ``pks`` from the lake's history (see the module's docstring);
    returns what was rewritten. ``gone``: which other customers' deletions are recorded (a
    match key shared with any other customer is kept). Idempotent. Call it with the stream's
    lock held (the storage's guard set): every rewrite is fenced."""
    wanted = {int(pk) for pk in pks}
    erased = Erased({}, 0)
    if not wanted:
        return erased
    scope = _Scope(wanted, gone)
    affected: list[tuple[str, str, Eraser]] = []
    values: set[str] = set()
    for dataset, erase in _datasets(columns):
        for path in storage.files(dataset):
            if _affected(storage, path, scope):
                affected.append((dataset, path, erase))
                table = storage.read_table(path)
                values |= _quoted_values(table, scope.mask(table, path), columns)
    # A value a live customer shares is that customer's too: reports keep quoting it.
    erased.reports = scrub_reports(storage, values - scope.shared)
    # Conflicts last: until theirs are erased, a repeated run still finds the ERP rows' keys.
    affected.sort(key=lambda found: found[0].endswith("/conflicts"))
    for dataset, path, erase in affected:
        table = storage.read_table(path)
        done = erase(table, scope.mask(table, path))
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
