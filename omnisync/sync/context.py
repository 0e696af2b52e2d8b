"""A run's context: what its steps use, opened by one factory, :func:`open_run`.

Nothing here is built lazily in a window thread: the client, the state store, the lake, the
server's filter behaviour and the one GX validator are made in the thread that starts the run
(:func:`open_run`, and :meth:`RunContext.open_validator` before the first window). Window threads
only use them. (Two threads that each built a GX context broke GX's process-global expression
parser; see ``omnisync/validation/runner.py``.)

Once the run holds the stream's lock, :meth:`RunContext.holding` gives the context its steps use:
the lake's writers are made with the lock's check, and the fence is handed to every state change.
The context it came from is left unfenced; nothing is patched onto an open writer.

A Dask worker is another process, which the flow's open context cannot reach: it opens its own
from the same factory (:func:`worker_context`), once per run, because a window task that opened
one each time would log in, migrate and start GX per window. The command line's preflight opens
a context before it starts a flow run in its own process; it offers it to that run
(:func:`handed_over`), which then logs in and counts nothing again.

What the server's date filters take is what an earlier run recorded for it (the state's
``omnisync_servers``), asked only of a server no run has met; a run that sees a recorded answer
contradicted records what it saw (:meth:`RunContext.filters_rejected`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omnisync.client import CustomerQuery, OmnitronClient
from omnisync.client.client import CLOCK_REUSE_SECONDS
from omnisync.connection import naming_omnitron_url, open_client, reach
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.memory import map_large_blocks, use_system_allocator
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.validation import Validator

log = logging.getLogger("omnisync.sync")
STREAM = "customers"


@dataclass
class RunContext:
    """One run's collaborators; steps take the ones they use from it, never the whole."""

    settings: Settings
    run_id: str
    storage: LakeStorage
    store: StateStore
    client: OmnitronClient
    changes: ChangeLog
    snapshot: Snapshot
    #: whether the server takes datetime filters (or only dates)
    datetimes: bool
    validator: Validator | None
    #: the stream's lock this run holds (:meth:`holding`), proved by every change it makes
    fence: Fence | None = None
    #: what :func:`open_run` opened, closed when the run ends
    _opened: contextlib.ExitStack = field(
        default_factory=contextlib.ExitStack, repr=False, compare=False
    )
    #: the count of every customer :func:`open_run` asked, and when (``time.monotonic``)
    _counted: tuple[int, float] | None = field(default=None, repr=False, compare=False)

    def holding(self, fence: Fence) -> RunContext:
        """This run's context once it holds ``fence``: its lake writers prove the fence before
        every change, and its state changes carry it."""
        storage = self.storage.guarded(fence.check)
        return dataclasses.replace(
            self,
            storage=storage,
            changes=ChangeLog(storage),
            snapshot=Snapshot(storage, self.settings.snapshot_buckets, self.settings.pii_policy),
            fence=fence,
        )

    def total(self) -> int:
        """``S``, the customers Omnitron holds: the count :func:`open_run` asked when it is at
        most a minute old (as the server's clock is reused), else asked now. Either way the
        latest answer's ``Date`` header is then fresh, so ``client.server_time()`` asks
        nothing."""
        counted, self._counted = self._counted, None
        if counted is not None and time.monotonic() - counted[1] <= CLOCK_REUSE_SECONDS:
            return counted[0]
        return self.client.count_customers(CustomerQuery(sort=None))

    def filters_rejected(self) -> None:
        """The server refused a datetime filter: it takes dates only (from now on, for this
        run, and for the runs after it)."""
        log.warning("%s now refuses datetimes in date filters; using dates", self.client.base_url)
        self.datetimes = False
        self.client.dates_only()
        self.store.servers.remember(self.client.base_url, False)

    def prepare_validator(self) -> None:
        """Start importing GX (seconds of a run's start) on its own thread, when the run's
        validator is not built: the requests that follow (planning's) wait on Omnitron meanwhile
        instead of before it. No other thread may import anything GX imports until the validator
        is built: this one has loaded what it uses by then (it opened the state database and the
        lake and asked Omnitron; ``tests/validation/test_gx_overlap.py`` holds every thread to
        that). Not for a remote lake: its file system's client (botocore, which GX imports too)
        may load modules on a later call."""
        if self.validator is None and self.storage.local:
            Validator.start_import()

    def open_validator(self) -> Validator:
        """The run's validator, built now if it was not (in the run's thread, before any window
        starts: nothing is built lazily in a window), and closed with the run."""
        if self.validator is None:
            self.validator = Validator.for_settings(self.settings)
            self._opened.callback(self.validator.close)
        return self.validator


@contextlib.contextmanager
def open_run(
    settings: Settings,
    run_id: str,
    validate: bool = True,
    datetimes: bool | None = None,
    ask: bool = True,
    preflight: bool = False,
    **client_options: Any,
) -> Iterator[RunContext]:
    """Open everything run ``run_id`` needs, and close it when the block ends; raises the error
    a user can act on (LakeError, StateError, ConfigurationError, AuthenticationFailed,
    RetriesExhausted). ``datetimes``: whether the server takes datetime filters, when the caller
    has just seen it answer; otherwise what an earlier run recorded, or one request asks (and it
    is recorded). ``ask``: when the answer was recorded, count every customer (one request), so
    that a wrong URL or credential fails here and planning has ``S`` and the server's clock
    (:meth:`RunContext.total`). ``preflight``: the client retries briefly until Omnitron first
    answers (:func:`~omnisync.connection.reach`, the command line's). ``client_options``
    override the client's settings."""
    use_system_allocator()
    with contextlib.ExitStack() as opened:
        # First, as it sends nothing: a missing OMNITRON_URL is refused before a lake folder or
        # a state database is made.
        client = (reach if preflight else open_client)(settings, **client_options)
        opened.callback(client.close)
        storage = LakeStorage(settings.lake)
        storage.check_writable()
        store = StateStore(
            settings.state_url.get_secret_value(), lease_seconds=settings.lock_lease_seconds
        )
        opened.callback(store.dispose)
        store.migrate()
        counted: tuple[int, float] | None = None
        if datetimes is None:
            datetimes = store.servers.datetime_filters(client.base_url)
            if datetimes is None:  # logs in and asks: a wrong URL fails before any work
                with naming_omnitron_url(settings, client):
                    datetimes = client.datetime_filters_supported
                store.servers.remember(client.base_url, datetimes)
            elif ask:
                with naming_omnitron_url(settings, client):
                    counted = (client.count_customers(CustomerQuery(sort=None)), time.monotonic())
        context = RunContext(
            settings,
            run_id,
            storage,
            store,
            client,
            ChangeLog(storage),
            Snapshot(storage, settings.snapshot_buckets, settings.pii_policy),
            datetimes,
            None,
            _opened=opened,
            _counted=counted,
        )
        if validate:
            context.open_validator()
        yield context


class _WorkerRuns:
    """The contexts this process opened as a Dask worker, by run. Owned here, beside the
    factory, and used only by :func:`worker_context`: the flow's own process passes its context
    to its window tasks and never looks here. A worker keeps the contexts of the last
    :attr:`KEPT` runs it served; a new run closes the oldest one's (its client, its state
    engine, its validator): one sync holds the stream's lock at a time, and a worker the cluster
    keeps for days must not keep every run's connections. Two, not one: a window of a run that
    was taken over may still be running here when the next run's first window comes."""

    KEPT = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, tuple[RunContext, contextlib.ExitStack]] = {}

    def context(self, settings: Settings, run_id: str, fence: tuple[str, int] | None) -> RunContext:
        with self._lock:
            if run_id not in self._open:
                while len(self._open) >= self.KEPT:
                    oldest = next(iter(self._open))  # dicts keep the order runs came in
                    self._open.pop(oldest)[1].close()
                closing = contextlib.ExitStack()
                # the flow's run recorded the server's filters: a worker asks Omnitron nothing
                context = closing.enter_context(open_run(settings, run_id, ask=False))
                if fence is not None:
                    # The flow's release does not reach this process: its fence asks the
                    # database at each check, not its own clock (two a file written, one or
                    # two a file deleted; a window stages a file per group of 8 buckets).
                    owner, acquired = fence
                    rebuilt = Fence(
                        context.store.lease, STREAM, owner, acquired, asks_database=True
                    )
                    context = context.holding(rebuilt)
                self._open[run_id] = (context, closing)
            return self._open[run_id][0]


_worker_runs = _WorkerRuns()


def worker_context(
    settings: Settings,
    run_id: str,
    fence: tuple[str, int] | None,
    datetimes: bool | None = None,
    windows: int = 1,
) -> RunContext:
    """Run ``run_id``'s context in this worker process, opened by :func:`open_run` the first
    time one of its windows runs here; ``fence``: the flow's lock (owner, acquired), proved by
    this worker's changes as by the flow's. ``datetimes``: what the flow now knows of the
    server's date filters; a server found to refuse datetimes after this worker opened its
    context is asked with dates from this window on, as the flow's own threads are.
    ``windows``: the plan's, so that a worker of a long plan maps large blocks as the flow's
    process does (:func:`~omnisync.memory.map_large_blocks`)."""
    map_large_blocks(windows)
    context = _worker_runs.context(settings, run_id, fence)
    if datetimes is False and context.datetimes is not False:
        context.datetimes = False
        context.client.dates_only()
    return context


class _Handed:
    """Contexts the command line offers to the flow run it starts next in its own process
    (:func:`handed_over`); owned here, beside the factory. Prefect cannot carry an open client
    as a flow parameter, and the flow runs in the command's process and thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offered: list[RunContext] = []

    @contextlib.contextmanager
    def offering(self, context: RunContext) -> Iterator[None]:
        with self._lock:
            self._offered.append(context)
        try:
            yield
        finally:
            with self._lock:
                if context in self._offered:
                    self._offered.remove(context)

    def take(self, settings: Settings) -> RunContext | None:
        with self._lock:
            for context in self._offered:
                if context.settings == settings:
                    self._offered.remove(context)
                    return context
        return None


_handed = _Handed()


def handed_over(context: RunContext) -> contextlib.AbstractContextManager[None]:
    """Within the block, the first run in this process with the same settings takes ``context``
    (:func:`take_handed`) instead of opening its own; its opener still closes it."""
    return _handed.offering(context)


def take_handed(settings: Settings) -> RunContext | None:
    """The context the command line offered for a run with ``settings``, if any."""
    return _handed.take(settings)
