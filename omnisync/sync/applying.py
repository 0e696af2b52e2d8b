"""Applying recorded deletions (G3, G9): the one path by which a customer leaves the lake.

A deletion is recorded in the state database (fenced) before the lake changes; applying it
writes its ``_op = 'delete'`` row to the change log (a file named after the detecting run,
rewritten the same way if a crash repeats it), removes its pk from its ``customers/`` bucket
(replaced atomically), erases its personal values from the rest of the lake when
``OMNISYNC_ERASE_DELETED`` says so, and only then marks it applied. A run killed anywhere in
between applies the same rows again (``deletions.py`` says how deletions are found).
"""

from __future__ import annotations

import datetime as dt
import logging

from omnisync.client import OmnitronClient
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.state.deletions import mark_applied, pending_deletions
from omnisync.sync.context import STREAM
from omnisync.sync.erasing import erase_deleted
from transforms.deletions import deletion_rows

log = logging.getLogger("omnisync.sync")


def apply_pending(
    *,
    settings: Settings,
    client: OmnitronClient,
    store: StateStore,
    fence: Fence | None,
    storage: LakeStorage,
    changes: ChangeLog,
    snapshot: Snapshot,
) -> int:
    """Write the change-log rows of recorded deletions, remove their pks from ``customers/``,
    erase them from the lake's history when the settings say so, and mark them applied; returns
    how many. Idempotent (see the module's docstring)."""
    assert fence is not None
    pending = pending_deletions(store, STREAM)
    if not pending:
        return 0
    by_run: dict[tuple[str, dt.datetime], list[int]] = {}
    for deletion in pending:
        by_run.setdefault((deletion.run_id, deletion.detected), []).append(deletion.pk)
    for (run_id, detected), pks in by_run.items():
        rows = deletion_rows(pks, detected, run_id, client.base_url)
        changes.write_window(rows, f"deleted-{run_id}-{detected:%Y%m%dT%H%M%S%fZ}")
        snapshot.remove(pks)
    if settings.erase_deleted:
        # before the mark: a run killed while erasing leaves these pending, to be erased again
        erase_deleted(storage, store, settings.erase_columns, [d.pk for d in pending])
    mark_applied(store, STREAM, [d.pk for d in pending], fence)
    log.info("removed %d customer(s) deleted in Omnitron", len(pending))
    return len(pending)
