"""What every step of a run shares, built completely before any window thread starts.

Nothing here is built lazily: the client, the state store, the lake, the server's filter
behaviour and the one GX validator are made by :meth:`RunParts.open`, in the thread that starts
the run. Window threads only use them. (Two threads that each built a GX context broke GX's
process-global expression parser; see ``omnisync/validation/runner.py``.)

A Dask worker is another process: :func:`parts_for` opens one set per worker process and run,
under a lock, and the flow releases them when the run ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from omnisync.client import OmnitronClient
from omnisync.connection import open_client
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.memory import use_system_allocator
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.validation import Validator

STREAM = "customers"
STAGING = "_staging/customers"  # beside the datasets, never inside one: readers never see it


@dataclass
class RunParts:
    settings: Settings
    run_id: str
    storage: LakeStorage
    store: StateStore
    client: OmnitronClient
    changes: ChangeLog
    snapshot: Snapshot
    datetimes: bool
    validator: Validator | None
    #: set by ``hold`` once the run holds the stream's lock
    fence: Fence | None = None

    def hold(self, fence: Fence) -> None:
        """From now on every state change and every change to the lake proves ``fence``."""
        self.fence = fence
        self.storage = self.storage.fenced(fence.check)
        self.changes = ChangeLog(self.storage)
        self.snapshot = Snapshot(self.storage, buckets=self.settings.snapshot_buckets)

    @classmethod
    def open(
        cls,
        settings: Settings,
        run_id: str,
        validate: bool = True,
        datetimes: bool | None = None,
        **client_options: Any,
    ) -> RunParts:
        """Open everything a run needs; raises the error a user can act on (LakeError,
        StateError, ConfigurationError, AuthenticationFailed, RetriesExhausted).
        ``datetimes``: whether the server takes datetime filters, when the caller has just
        seen it answer (otherwise one request asks). ``client_options`` override the client's
        settings (preflight retries briefly)."""
        use_system_allocator()
        storage = LakeStorage(settings.lake)
        storage.check_writable()
        store = StateStore(
            settings.state_url.get_secret_value(), lease_seconds=settings.lock_lease_seconds
        )
        client: OmnitronClient | None = None
        try:
            store.migrate()
            client = open_client(settings, **client_options)
            # Logs in and asks once: a wrong URL or credential fails before any work.
            if datetimes is None:
                datetimes = client.datetime_filters_supported
            return cls(
                settings,
                run_id,
                storage,
                store,
                client,
                ChangeLog(storage),
                Snapshot(storage, buckets=settings.snapshot_buckets),
                datetimes,
                Validator.for_settings(settings) if validate else None,
            )
        except BaseException:
            if client is not None:
                client.close()
            store.dispose()
            raise

    def close(self) -> None:
        self.client.close()
        if self.validator is not None:
            self.validator.close()
        self.store.dispose()


_by_run: dict[str, RunParts] = {}
_by_run_lock = threading.Lock()


def parts_for(settings: Settings, run_id: str) -> RunParts:
    """This process's parts of run ``run_id``, opened once (on Dask, once per worker)."""
    with _by_run_lock:
        parts = _by_run.get(run_id)
        if parts is None:
            parts = _by_run[run_id] = RunParts.open(settings, run_id)
        return parts


def adopt(parts: RunParts) -> None:
    """Register parts opened by the flow, so that its window tasks in this process use them."""
    with _by_run_lock:
        _by_run[parts.run_id] = parts


def release(run_id: str) -> None:
    with _by_run_lock:
        parts = _by_run.pop(run_id, None)
    if parts is not None:
        parts.close()
