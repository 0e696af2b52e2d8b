"""A full refresh rebuilds ``customers/`` from what it read (G9), instead of merging into it.

A merge keeps every row the read did not replace, so a customer deleted in Omnitron, or a row a
tool put in the lake behind omnisync's back, would survive a full refresh. The plan's finish
therefore writes each bucket afresh, and why nothing is lost or kept wrongly:

* **What a bucket holds afterwards:** the plan's staged rows of that bucket (everything Omnitron
  listed modified before the plan's upper bound), plus the lake's rows the read could not have
  seen: versions at or after the upper bound (a later run may have written them), and customers
  the read did not list that Omnitron still has (modified during the read, so moved past the
  upper bound, or quarantined). Latest ``modified_date`` wins, as in a merge.
* **Only a customer Omnitron confirms absent is dropped.** A lake pk the read did not list is a
  candidate; it is dropped only when two whole listings of a pk range holding it (no date
  filter: every customer that exists there is listed, whatever its ``modified_date``) both lack
  it, or, where even the range of its pk alone cannot be listed whole, its own URL answers 404
  and a listing of its pk alone then agrees (``absence.py``); answers that disagree keep it.
* **Deletions are recorded before any bucket changes** (``omnisync/state/deletions.py``), and
  applied by the one apply step every deletion takes (``omnisync/sync/applying.py``,
  :func:`~omnisync.sync.applying.apply_pending`): the change log gets its ``_op = 'delete'``
  rows exactly once.
* **No reader sees an empty or half lake.** Each bucket file is replaced atomically (fenced by
  ``LakeStorage``'s guard), so a reader in the middle sees each pk once, in its old or its new
  version; a bucket left with no row is removed only after its replacement rows are written.
  Files in ``customers/`` that are no bucket of the layout are removed last.
* **Crash-safe.** The plan is marked a rebuild in its staging folder before it is saved, so a
  run that resumes it rebuilds too. Rebuilding is idempotent: a bucket already rebuilt holds the
  staged rows and the rows kept, which a second rebuild keeps again, and the deletions recorded
  are still pending until applied.
* **Never much of the lake at once.** Before any deletion is recorded, the rebuild refuses
  (changing nothing; its plan stays open, and the next run resumes and asks again) when
  Omnitron counts 0 customers or it would delete too large a share (``mass_deletion.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.client import CustomerQuery, OmnitronClient
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.lake.snapshot import DATASET, bucket_path
from omnisync.memory import give_back
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.state.deletions import record_deletions
from omnisync.state.times import to_us
from omnisync.sync.absence import Absence, ask_absent
from omnisync.sync.applying import apply_pending
from omnisync.sync.context import STREAM
from omnisync.sync.mass_deletion import refuse_mass_deletion
from omnisync.sync.pk_spans import proven
from omnisync.sync.staging import open_staged, staged_by_bucket, staged_files, staging_dir
from transforms.pk_sets import contains, sorted_unique
from transforms.versions import latest_per_pk

log = logging.getLogger("omnisync.sync")
_MARK = "_rebuild.json"


def mark_rebuild(storage: LakeStorage, plan_id: str) -> None:
    """Say, in the plan's staging folder, that finishing it rebuilds ``customers/``."""
    storage.write_json(f"{staging_dir(plan_id)}/{_MARK}", {"rebuild": True})


def is_rebuild(storage: LakeStorage, plan_id: str) -> bool:
    return storage.read_json(f"{staging_dir(plan_id)}/{_MARK}") is not None


def _listed(client: OmnitronClient, lo: int, hi: int, page_size: int) -> set[int] | None:
    """Every pk Omnitron has in ``[lo, hi)`` (no other filter), or None when one answer does
    not prove it (``pk_spans.py``: not whole, or a record whose pk cannot be read). A record
    listed with an unreadable body still counts as present."""
    query = CustomerQuery(pk_gte=lo, pk_lt=hi, sort=None)
    return proven(next(client.list_customers(query, page_size), None))


def confirmed_absent(
    client: OmnitronClient, candidates: list[int], lake: np.ndarray, page_size: int
) -> list[int]:
    """The ``candidates`` (sorted) Omnitron confirms it does not have. Neighbouring candidates
    are asked together, in pk ranges holding at most about a page of the lake's rows (``lake``:
    its pks, sorted); a range Omnitron cannot answer on one page is halved, down to one pk,
    which must be confirmed by two answers (``absence.py``)."""
    fits = max(1, page_size * 9 // 10)
    groups: list[list[int]] = []
    for pk in candidates:
        if groups:
            lo = int(np.searchsorted(lake, groups[-1][0]))
            hi = int(np.searchsorted(lake, pk, "right"))
            if hi - lo <= fits:
                groups[-1].append(pk)
                continue
        groups.append([pk])
    gone: list[int] = []
    while groups:
        group = groups.pop()
        missing: list[int] = group
        for _ in range(2):  # absent from two whole listings, as the sync's deletion check asks
            listed = _listed(client, group[0], group[-1] + 1, page_size)
            if listed is None:
                break
            missing = [pk for pk in missing if pk not in listed]
            if not missing:
                break
        else:
            gone.extend(missing)
            continue
        if not missing:
            continue
        if len(group) == 1:
            # its own URL's 404 and a listing of its pk alone must agree (absence.py); a pk
            # they disagree on stays, for the run's deletion check and the next run to ask again
            if ask_absent(client, group[0])[0] is Absence.GONE:
                gone.append(group[0])
            continue
        middle = len(group) // 2
        groups.extend([group[middle:], group[:middle]])
    return sorted(gone)


def _read_old(storage: LakeStorage) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The files of ``customers/``, and the pks and modified_dates (µs) their rows hold. A file
    that cannot be read stops the rebuild (:class:`~omnisync.lake.storage.LakeDamaged` names it
    and the repair that mends it): it may hold the last valid row of a customer the refresh
    cannot read again (its newest version quarantined), which a rebuild would drop unseen."""
    files = storage.files(DATASET)
    pks, stamps = [], []
    for path in files:
        table = storage.read_table(path, ["pk", "modified_date"])
        pks.append(table.column("pk").cast(pa.int64()).to_numpy())
        modified = table.column("modified_date").cast(pa.timestamp("us", tz="UTC"))
        stamps.append(modified.cast(pa.int64()).to_numpy(zero_copy_only=False))
    if not pks:
        return files, np.zeros(0, np.int64), np.zeros(0, np.int64)
    return files, np.concatenate(pks), np.concatenate(stamps)


def _staged_pks(storage: LakeStorage, plan_id: str) -> np.ndarray:
    def pks(name: str) -> Iterator[np.ndarray]:
        with open_staged(storage, name) as file:
            for index in range(len(file.buckets)):
                yield file.read(index, ["pk"]).column("pk").cast(pa.int64()).to_numpy()

    return sorted_unique(
        part for name in staged_files(storage, staging_dir(plan_id)) for part in pks(name)
    )


def _rows_of(storage: LakeStorage, files: list[str], keep: np.ndarray) -> pa.Table | None:
    """The lake's rows of the pks in ``keep`` (few: those the read could not have seen)."""
    if not len(keep):
        return None
    wanted = pa.array(keep, type=pa.int64())
    found = []
    for path in files:  # a damaged file stops the rebuild, as in _read_old
        pks = storage.read_table(path, ["pk"]).column("pk").cast(pa.int64())
        if pc.any(pc.is_in(pks, wanted)).as_py():
            table = storage.read_table(path)
            found.append(table.filter(pc.is_in(table.column("pk").cast(pa.int64()), wanted)))
    return pa.concat_tables(found, promote_options="permissive") if found else None


def rebuild_snapshot(
    plan_id: str,
    upper: dt.datetime,
    *,
    settings: Settings,
    client: OmnitronClient,
    store: StateStore,
    fence: Fence | None,
    run_id: str,
    storage: LakeStorage,
    changes: ChangeLog,
    snapshot: Snapshot,
) -> int:
    """Write ``customers/`` afresh from the plan's staged rows, keeping the lake's rows the read
    could not have seen and recording (then applying) the deletions Omnitron confirms; returns
    how many customers that deleted. See the module's docstring for why this is exact and safe
    to repeat."""
    assert fence is not None, "a rebuild changes the lake: hold the lock"
    files, old_pks, old_stamps = _read_old(storage)
    read = _staged_pks(storage, plan_id)
    newer = old_pks[old_stamps >= to_us(upper)]
    unread = np.unique(old_pks[~contains(read, old_pks)])  # read: sorted, by _staged_pks
    candidates = unread[~np.isin(unread, newer)]
    gone = confirmed_absent(client, candidates.tolist(), np.sort(old_pks), settings.page_size)
    # Read before anything is recorded: a damaged file stops the rebuild with nothing changed.
    kept = _rows_of(storage, files, unread)
    if gone:
        total = client.count_customers(CustomerQuery(sort=None))
        refuse_mass_deletion(settings, len(sorted_unique([old_pks])), len(gone), total)
        detected = client.server_time()
        record_deletions(store, STREAM, gone, detected, run_id, fence)
        if kept is not None:
            absent = pa.array(gone, pa.int64())
            kept = kept.filter(pc.invert(pc.is_in(kept.column("pk").cast(pa.int64()), absent)))
            kept = kept if kept.num_rows else None
    kept_by_bucket = dict(snapshot.split(kept)) if kept is not None else {}
    written = 0
    for bucket, groups in staged_by_bucket(storage, plan_id, snapshot.buckets):
        if bucket in kept_by_bucket:
            groups.append(kept_by_bucket[bucket])
        rows = (
            latest_per_pk(pa.concat_tables(groups, promote_options="permissive"))
            if groups
            else None
        )
        snapshot.replace_bucket(bucket, rows)
        written += rows is not None
        del rows, groups
        give_back()  # see omnisync/memory.py
        log.debug("merged bucket %d (rebuilt)", bucket)
    # Files a reader sees that are no bucket of the layout held rows the read replaced, or kept.
    layout = {bucket_path(b) for b in range(snapshot.buckets)}
    for path in storage.files(DATASET, suffix=""):
        hidden = any(part.startswith((".", "_")) for part in path.split("/")[1:])
        if path not in layout and not hidden:
            storage.delete(path)
    apply_pending(
        settings=settings,
        client=client,
        store=store,
        fence=fence,
        storage=storage,
        changes=changes,
        snapshot=snapshot,
    )
    log.info(
        "full refresh rebuilt customers/: %d bucket(s), %d customer(s) kept that the read "
        "could not see, %d deleted in Omnitron",
        written,
        0 if kept is None else kept.num_rows,
        len(gone),
    )
    return len(gone)
