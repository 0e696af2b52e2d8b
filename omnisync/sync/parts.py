"""What every step of a run shares, built completely before any window thread starts.

Nothing here is built lazily: the client, the state store, the lake, the server's filter
behaviour (as an earlier run recorded it, or asked) and the one GX validator are made by
:meth:`RunParts.open`, in the thread that starts the run. Window threads only use them. (Two
threads that each built a GX context broke GX's process-global expression parser; see
``omnisync/validation/runner.py``.)

A Dask worker is another process: :func:`parts_for` opens one set per worker process and run,
under a lock, and the flow releases them when the run ends.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from omnisync.client import CustomerQuery, OmnitronClient
from omnisync.client.client import CLOCK_REUSE_SECONDS
from omnisync.connection import naming_omnitron_url, open_client
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.memory import use_system_allocator
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.validation import Validator

log = logging.getLogger("omnisync.sync")
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
    #: the count of every customer ``open`` asked, and when (``time.monotonic``)
    _counted: tuple[int, float] | None = None

    def hold(self, fence: Fence) -> None:
        """From now on every state change and every change to the lake proves ``fence``."""
        self.fence = fence
        self.storage.guard = fence.check

    @classmethod
    def open(
        cls,
        settings: Settings,
        run_id: str,
        validate: bool = True,
        datetimes: bool | None = None,
        ask: bool = True,
        **client_options: Any,
    ) -> RunParts:
        """Open everything a run needs; raises the error a user can act on (LakeError,
        StateError, ConfigurationError, AuthenticationFailed, RetriesExhausted).
        ``datetimes``: whether the server takes datetime filters, when the caller has just
        seen it answer; otherwise what an earlier run recorded, or one request asks (and it is
        recorded). ``ask``: when the answer was recorded, count every customer (one request),
        so that a wrong URL or credential fails here and planning has ``S`` and the server's
        clock (:meth:`total`). ``client_options`` override the client's settings (preflight
        retries briefly)."""
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
            counted: tuple[int, float] | None = None
            if datetimes is None:
                datetimes = store.servers.datetime_filters(client.base_url)
                if datetimes is None:  # logs in and asks: a wrong URL fails before any work
                    with naming_omnitron_url(settings, client):
                        datetimes = client.datetime_filters_supported
                    store.servers.remember(client.base_url, datetimes)
                elif ask:
                    with naming_omnitron_url(settings, client):
                        counted = (
                            client.count_customers(CustomerQuery(sort=None)),
                            time.monotonic(),
                        )
            parts = cls(
                settings,
                run_id,
                storage,
                store,
                client,
                ChangeLog(storage),
                Snapshot(storage, settings.snapshot_buckets, settings.pii_policy),
                datetimes,
                Validator.for_settings(settings) if validate else None,
            )
            parts._counted = counted
            return parts
        except BaseException:
            if client is not None:
                client.close()
            store.dispose()
            raise

    def total(self) -> int:
        """``S``, the customers Omnitron holds: the count :meth:`open` asked when it is at most
        a minute old (as the server's clock is reused), else asked now. Either way the latest
        answer's ``Date`` header is then fresh, so ``client.server_time()`` asks nothing."""
        counted, self._counted = self._counted, None
        if counted is not None and time.monotonic() - counted[1] <= CLOCK_REUSE_SECONDS:
            return counted[0]
        return self.client.count_customers(CustomerQuery(sort=None))

    def filters_rejected(self) -> None:
        """The server refused a datetime filter: it takes dates only (from now on, for this
        run, and for the runs after it)."""
        log.warning("%s now refuses datetimes in date filters; using dates", self.client.base_url)
        self.datetimes = False
        self.store.servers.remember(self.client.base_url, False)

    def close(self) -> None:
        self.client.close()
        if self.validator is not None:
            self.validator.close()
        self.store.dispose()


_by_run: dict[str, RunParts] = {}
_by_run_lock = threading.Lock()
#: a preflight's parts, for the flow run the command line starts next in this process
_handed: list[RunParts] = []


def hand_over(parts: RunParts) -> None:
    """Keep a preflight's open ``parts`` for the next run in this process with the same
    settings (:func:`take_handed`): a flow run the command line starts then logs in and counts
    nothing again. Whatever is not taken is closed by :func:`drop_handed`."""
    with _by_run_lock:
        _handed.append(parts)


def take_handed(settings: Settings) -> RunParts | None:
    with _by_run_lock:
        for parts in _handed:
            if parts.settings == settings:
                _handed.remove(parts)
                return parts
    return None


def drop_handed() -> None:
    with _by_run_lock:
        left = list(_handed)
        _handed.clear()
    for parts in left:
        parts.close()


def parts_for(settings: Settings, run_id: str) -> RunParts:
    """This process's parts of run ``run_id``, opened once (on Dask, once per worker)."""
    with _by_run_lock:
        parts = _by_run.get(run_id)
        if parts is None:
            # the flow's parts recorded the server's filters: a worker asks Omnitron nothing
            parts = _by_run[run_id] = RunParts.open(settings, run_id, ask=False)
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
