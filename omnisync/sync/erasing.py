"""Erasing the customers a run deleted (G9, ``OMNISYNC_ERASE_DELETED``), wherever the lake
keeps them: staged rows first (``omnisync.sync.staging``), then every dataset, what a rebuild
moved aside and the reports (``omnisync.lake.erasure``). Staging of plans that are over is
removed; rows an open plan staged are taken out of it, so finishing it brings nobody back.
A match key a conflict shares with a customer whose deletion is not recorded is kept."""

from __future__ import annotations

from collections.abc import Collection

from omnisync.lake import LakeStorage
from omnisync.lake.erasure import Erased, erase_customers
from omnisync.state import StateStore
from omnisync.state.deletions import recorded_deletions
from omnisync.sync.context import STREAM
from omnisync.sync.staging import remove_staged
from omnisync.sync.staging_upkeep import remove_finished_staging


def erase_deleted(
    storage: LakeStorage, store: StateStore, columns: Collection[str], pks: list[int]
) -> Erased:
    """Erase ``pks`` (their ``columns``, ``OMNISYNC_ERASE_COLUMNS``) from the lake as the
    module's docstring says; idempotent, under the lock."""
    remove_finished_staging(storage, store)
    remove_staged(storage, pks)
    return erase_customers(
        storage,
        pks,
        columns,
        gone=lambda others: recorded_deletions(store, STREAM, sorted(others)),
    )
