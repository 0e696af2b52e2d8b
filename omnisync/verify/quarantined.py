"""Which of verify's missing and stale customers are *quarantined*, and the lake's proof of it.

Omnitron's version of such a customer could not be typed: the sync put its raw record in
``quarantine/customers/`` and kept the newest version that could be typed in ``customers/``,
marked (``transforms/quarantine_marks.py``). That a version is in the quarantine is not enough to
call the customer quarantined: the row in ``customers/`` may have been removed, or rolled back,
behind the product's back, and a verdict "equal" would then hide a lost row. So a missing or
stale customer is *quarantined* only when the lake says why it lacks Omnitron's version:

* **stale**: its row in ``customers/`` is marked ``quarantined`` with ``quarantine_record``
  pointing at that very version;
* **missing**: it never had a row, that is ``customer_changes/`` logs no version of it that
  could be typed (every version it ever had was quarantined).

Anything else stays a difference, which ``verify --repair`` mends: it puts the customer's newest
version logged in ``customer_changes/`` back and marks it (``omnisync/verify/repair.py``).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake import LakeStorage
from omnisync.lake.changes import DATASET as CHANGES
from omnisync.lake.snapshot import DATASET as SNAPSHOT
from omnisync.state.times import to_us
from transforms.quarantine_marks import FLAG, POINTER
from transforms.schema import CUSTOMER_SCHEMA, TIMESTAMP
from transforms.versions import latest_per_pk


def _rows_of(
    storage: LakeStorage, dataset: str, pks: set[int], columns: list[str] | None
) -> pa.Table | None:
    """The rows of ``pks`` in every file of ``dataset`` a reader opens (``columns`` only)."""
    wanted = pa.array(sorted(pks), pa.int64())
    found = []
    for path in storage.files(dataset):
        table = storage.read_table(path, columns)
        found.append(table.filter(pc.is_in(table.column("pk").cast(pa.int64()), wanted)))
    return pa.concat_tables(found, promote_options="permissive") if found else None


def marked_versions(storage: LakeStorage, pks: set[int]) -> dict[int, set[int]]:
    """Per pk of ``pks`` with a row in ``customers/`` marked quarantined, the versions (µs)
    its marks point at."""
    marked: dict[int, set[int]] = {}
    rows = _rows_of(storage, SNAPSHOT, pks, ["pk", "_dq_flags"])
    if rows is None:
        return marked
    for pk, flags in zip(rows["pk"].to_pylist(), rows["_dq_flags"].to_pylist(), strict=True):
        if FLAG not in (flags or []):
            continue
        for flag in flags:
            if flag.startswith(POINTER) and "#" in flag:
                stamp = dt.datetime.fromisoformat(flag.rsplit("#", 1)[1])
                marked.setdefault(int(pk), set()).add(to_us(stamp))
    return marked


def ever_written(storage: LakeStorage, pks: set[int]) -> set[int]:
    """The pks of ``pks`` of which ``customer_changes/`` logs a version read (``upsert``)."""
    rows = _rows_of(storage, CHANGES, pks, ["pk", "_op"])
    if rows is None:
        return set()
    read = rows.filter(pc.equal(rows["_op"], "upsert"))
    return {int(pk) for pk in read["pk"].to_pylist()}


def previous_rows(storage: LakeStorage, before: dict[int, int]) -> pa.Table | None:
    """Per pk of ``before``, the newest version ``customer_changes/`` logs that is older than
    ``before[pk]`` (µs: a quarantined version), as a row of ``customers/``; None if none."""
    rows = _rows_of(storage, CHANGES, set(before), None)
    if rows is None:
        return None
    rows = rows.filter(pc.equal(rows["_op"], "upsert"))
    limit = pa.array([before[int(pk)] for pk in rows["pk"].to_pylist()], pa.int64())
    stamps = rows["modified_date"].cast(TIMESTAMP).cast(pa.int64())
    rows = rows.filter(pc.less(stamps, limit))
    if not rows.num_rows:
        return None
    return latest_per_pk(rows.select(CUSTOMER_SCHEMA.names))


def name_quarantined(
    storage: LakeStorage,
    found: dict[str, list[int]],
    versions: dict[int, int],
    quarantined: dict[int, set[int | None]],
) -> None:
    """Move the missing and stale customers the lake proves quarantined (see the module's
    docstring) to ``quarantined``: a repair would only read their version into quarantine
    again. ``quarantined``: per pk, the versions ``quarantine/customers/`` holds."""
    suspects = {
        pk
        for kind in ("missing", "stale")
        for pk in found[kind]
        if versions.get(pk) in quarantined.get(pk, ())
    }
    if not suspects:
        return
    marked = marked_versions(storage, suspects)
    written = ever_written(storage, {pk for pk in found["missing"] if pk in suspects})
    for kind in ("missing", "stale"):
        kept = []
        for pk in found[kind]:
            proven = pk not in written if kind == "missing" else versions[pk] in marked.get(pk, ())
            if pk in suspects and proven:
                found["quarantined"].append(pk)
                del versions[pk]
            else:
                kept.append(pk)
        found[kind] = kept
