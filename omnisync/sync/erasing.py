"""Erasing the customers a run deleted (G9, ``OMNISYNC_ERASE_DELETED``), wherever the lake
keeps them: staged rows first (``omnisync.sync.staging``), then every dataset, what a rebuild
moved aside and the reports (``omnisync.lake.erasure``). Staging of plans that are over is
removed; rows an open plan staged are taken out of it, so finishing it brings nobody back.
A match key a conflict shares with a customer whose deletion is not recorded is kept."""

from __future__ import annotations

from omnisync.lake.erasure import Erased, erase_customers
from omnisync.state.deletions import recorded_deletions
from omnisync.sync.parts import STREAM, RunParts
from omnisync.sync.staging import remove_finished_staging, remove_staged


def erase_deleted(parts: RunParts, pks: list[int]) -> Erased:
    """Erase ``pks`` from the lake as the module's docstring says; idempotent, under the lock."""
    storage, store = parts.storage, parts.store
    remove_finished_staging(storage, store)
    remove_staged(storage, pks)
    return erase_customers(
        storage,
        pks,
        parts.settings.erase_columns,
        gone=lambda others: recorded_deletions(store, STREAM, sorted(others)),
    )
