"""One verification of ``customers/`` against Omnitron, judged as of the watermark (G9).

The steps, and why the verdict is exact under churn:

1. **The watermark** of the ``customers`` stream is read first: it is the greatest
   ``modified_date`` the syncs have read, and the lake holds every version up to it (G1). A
   customer Omnitron shows modified (or created) after it is *behind*: the next incremental
   sync reads it, and it is never a difference.
2. **The lake** is read as a reader sees it (``counts.LakeSide``), after the watermark: a sync
   running meanwhile can only add versions after it, which step 5 calls behind.
3. **The newest customers** are listed whole: everything Omnitron has modified at or after a cut
   placed so that about half a page of the lake's rows are newer than it (never after the
   watermark). This one request (more only when much changed since the watermark) covers what
   changed since the watermark and the lake's most recent history, where a missed update is
   most likely; each is compared customer by customer.
4. **Everything older** is compared by counts, narrowed where they differ
   (``narrowing.py``): a healthy lake costs this step 3 requests, whatever its size. With
   ``audit``, one slice of pks is also listed whole and compared customer by customer, from
   where the previous audited verification stopped (its run log record keeps the place).
5. **Judging each pk found.** One that a listing has just read at a version not after the
   watermark is judged by that read (``report.py`` names the kinds). The others (absent from
   Omnitron's answer, or held in the lake at a version after the watermark) are read again,
   by pk range with no date filter: one Omnitron now has modified after the watermark is
   behind, one whose difference is gone is dropped (``vanished``). So an edit made while
   verify runs never becomes a reported difference.

``full`` lists everything (about N / page requests) and compares every customer's
``modified_date``: it sees what counts cannot (differences that cancel within a range).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from dataclasses import dataclass

import numpy as np

from omnisync.client import CustomerQuery, DateFilterRejected, OmnitronClient, Page
from omnisync.connection import naming_omnitron_url, reach
from omnisync.lake import LakeStorage
from omnisync.lake.quarantine import quarantined_versions
from omnisync.lake.record import check_format, check_lake_for_state
from omnisync.settings import Settings
from omnisync.state import RunRecord, StateError, StateStore
from omnisync.state.store import not_made_yet
from omnisync.state.times import from_us, to_us
from omnisync.sync.context import STREAM
from omnisync.verify.counts import Cut, LakeSide, ServerSide, Versions, choose_cut
from omnisync.verify.narrowing import Narrowing, OlderLake
from omnisync.verify.quarantined import name_quarantined
from omnisync.verify.report import KINDS, Outcome, read_report, write_report
from omnisync.verify.second_look import classify, second_look

__all__ = ["classify", "run_verify", "verify"]

KIND = "verify"


class NothingToVerify(StateError):
    """The stream has no watermark yet: there is no lake to judge (run a sync first)."""


def _state_made(settings: Settings) -> None:
    """Raise NothingToVerify when no run has made the state database yet: a verification only
    reads it, and made here it would be an empty one (a mistyped path would leave a file)."""
    missing = not_made_yet(settings.state_url.get_secret_value())
    if missing is not None:
        raise NothingToVerify(
            f"no state database at {str(missing)!r} yet: run `omnisync sync` first"
        )


def run_verify(settings: Settings, full: bool = False, audit: bool = False) -> Outcome:
    """Verify the lake once, record it in the run log and write its report; returns the
    outcome. Raises NothingToVerify, StateError, LakeError or an OmnitronError (the caller
    turns them into one line)."""
    storage = LakeStorage(settings.lake)
    check_format(storage)  # an older lake: one line saying to rebuild it, not a wrong verdict
    _state_made(settings)
    store = StateStore(
        settings.state_url.get_secret_value(), lease_seconds=settings.lock_lease_seconds
    )
    try:
        store.migrate()
        watermark = store.watermarks.get(STREAM)
        if watermark is None:
            raise NothingToVerify(
                "the customers stream has no watermark yet: run `omnisync sync` first"
            )
        check_lake_for_state(storage, watermark)
        run_id = uuid.uuid4().hex
        with (
            reach(settings) as client,
            naming_omnitron_url(settings, client),
            RunRecord(store, run_id, STREAM, KIND) as record,
        ):
            rolling = next_audit(store, settings.verify_audit_runs) if audit else None
            known = store.servers.datetime_filters(client.base_url)
            outcome = verify(
                client,
                storage,
                watermark,
                settings.page_size,
                full,
                run_id,
                audit=rolling,
                datetimes=known,
            )
            if outcome.datetimes is not None and outcome.datetimes != known:
                store.servers.remember(client.base_url, outcome.datetimes)
            write_report(storage, outcome, dt.datetime.now(dt.UTC))
            record.counts = outcome.counts()
        return outcome
    finally:
        store.dispose()


def last_findings(settings: Settings) -> Outcome | None:
    """What the latest verification found, if it said "different" as of the watermark the
    stream has now and no run of the stream started after it (so ``--repair`` need not ask
    Omnitron the same questions again); None otherwise. A sync that read nothing new leaves the
    watermark as it was, yet its deletion check may have applied what the report calls
    deleted. The repair verifies afresh afterwards in any case, so findings that went out of
    date meanwhile cannot make it report a lake equal that is not."""
    _state_made(settings)
    store = StateStore(settings.state_url.get_secret_value())
    try:
        store.migrate()
        watermark = store.watermarks.get(STREAM)
        # A run refused at once (another held the lock) changed nothing.
        runs = [r for r in store.runs.recent(STREAM, limit=20) if r["status"] != "refused"]
    finally:
        store.dispose()
    if not runs or runs[0]["kind"] != KIND or runs[0]["status"] != "succeeded":
        return None
    counts = json.loads(str(runs[0]["counts"] or "{}"))
    if counts.get("verdict") != "different" or not counts.get("report"):
        return None
    found = read_report(LakeStorage(settings.lake), str(counts["report"]))
    return found if found is not None and found.watermark == watermark else None


@dataclass(frozen=True)
class Audit:
    """The rolling exact audit's next slice: from ``start`` (None: the lake's first pk), one
    ``runs``-th of the lake's customers, each compared with Omnitron's version."""

    start: int | None
    runs: int


def next_audit(store: StateStore, runs: int) -> Audit:
    """Where the audit goes on: after the slice the latest audited verification compared (kept
    in its run log record), sized so ``runs`` verifications cover the whole lake."""
    for run in store.runs.recent(STREAM, limit=200):
        if run["kind"] != KIND or run["status"] != "succeeded":
            continue
        counts = json.loads(str(run["counts"] or "{}"))
        if "audit_next" in counts:
            start = str(counts["audit_next"] or "")
            return Audit(int(start) if start.lstrip("-").isdigit() else None, runs)
    return Audit(None, runs)


def verify(
    client: OmnitronClient,
    storage: LakeStorage,
    watermark: dt.datetime,
    page_size: int,
    full: bool = False,
    run_id: str = "",
    audit: Audit | None = None,
    datetimes: bool | None = None,
) -> Outcome:
    """Compare the lake with Omnitron as of ``watermark`` (steps 2-5 above); with ``audit``,
    also compare one slice of pks exactly (step 4b). ``datetimes``: whether the server takes
    datetimes in date filters, as a run recorded it (None: the first answer tells)."""
    lake = LakeSide.read(storage, whole=full or audit is not None)  # the daily one reads all
    server = ServerSide(client, page_size)
    server.datetimes = datetimes
    cut, newer = _newest(server, lake, watermark, page_size, full)
    watermark_us = to_us(watermark)

    listed = np.fromiter(newer.keys(), dtype=np.int64, count=len(newer))
    in_newer = np.isin(lake.pks, listed)
    older = OlderLake.of(lake.pks[~in_newer], lake.modified[~in_newer])
    candidates = {
        pk
        for pk, stamp in newer.items()
        if stamp <= watermark_us and lake.versions_of(pk) != [stamp]
    }
    page_size = server.page_size  # what the server serves (see _newest)
    narrowing = Narrowing(server, cut, older, page_size)
    if cut.param is None:
        candidates.update(older.pks.tolist())  # listed everything: the rest is not in Omnitron
    else:
        total = server.count(cut.older())
        narrowing.by_pk(total)
        if cut.datetimes:
            narrowing.by_modified(total)
        candidates |= narrowing.candidates
    audited: dict[str, int | None] | None = None
    if audit is not None and cut.param is not None:
        audited = narrowing.audit(audit.start, -(-len(lake) // audit.runs))
        candidates |= narrowing.candidates
    # A candidate read by a listing just now, at a version not after the watermark, is judged
    # by that read; the others (not in Omnitron's answer, or the lake ahead of the watermark)
    # are read again: they may have changed since the lake was read (behind), or be gone.
    versions: dict[int, int] = {}
    known = {**narrowing.listed, **newer}
    settled: dict[str, list[int]] = {kind: [] for kind in KINDS}
    again = set()
    for pk in candidates:
        held = lake.versions_of(pk)
        if pk in known and known[pk] <= watermark_us and max(held, default=0) <= watermark_us:
            kind = classify(known[pk], held, watermark_us)
            if kind is not None and kind != "behind":
                settled[kind].append(pk)
                if kind in ("missing", "stale"):
                    versions[pk] = known[pk]
        else:
            again.add(pk)
    found, behind, vanished = second_look(
        server, lake, cut, again, known, watermark_us, versions, narrowing.by_range
    )
    for kind in KINDS:
        found[kind] += settled[kind]
    name_quarantined(storage, found, versions, quarantined_versions(storage))
    return Outcome(
        run_id=run_id,
        watermark=watermark,
        full=full,
        lake_rows=len(lake),
        lake_files=lake.files,
        unreadable=lake.unreadable,
        found=found,
        behind=behind
        + sum(
            1
            for pk, stamp in newer.items()
            if stamp > watermark_us and lake.versions_of(pk) != [stamp]
        ),
        vanished=vanished,
        requests=server.requests,
        cut=None if cut.param is None else cut.param.isoformat(),
        ranges_listed=narrowing.ranges_listed,
        datetimes=server.datetimes,
        versions=versions,
        audit=audited,
    )


def _newest(
    server: ServerSide, lake: LakeSide, watermark: dt.datetime, page_size: int, full: bool
) -> tuple[Cut, Versions]:
    """The cut (step 3) and every customer Omnitron has at or after it. A server that caps
    ``limit`` below the page asked for shows it in its first answer (fewer rows and a ``next``):
    the cut is then chosen again for the page it serves (one request more), and
    ``server.page_size`` becomes that page for every later request."""
    keep = page_size // 2
    if full or len(lake) <= keep:
        return Cut(None, True), server.read_all(CustomerQuery(sort=None))
    for again in (False, True):
        newest = int(np.partition(lake.modified, len(lake) - keep)[len(lake) - keep])
        at = min(from_us(newest), watermark)
        first: Page | None = None
        if server.datetimes is None:  # the first answer also says which filters it takes
            with contextlib.suppress(DateFilterRejected):
                first = server.detect_datetimes(at)
        cut = choose_cut(at, datetimes=bool(server.datetimes))
        if first is None:
            try:
                first = server.page(cut.newer(), server.page_size)
            except DateFilterRejected:
                if not cut.datetimes:
                    raise
                # recorded as taking datetimes, and refusing them now: ask with a date
                server.datetimes = False
                cut = choose_cut(at, datetimes=False)
                first = server.page(cut.newer(), server.page_size)
        received = len(first.results)
        if not again and first.has_next and 1 < received < server.page_size:
            server.page_size, keep = received, received // 2
            continue
        break
    return cut, server.read_all(cut.newer(), first)
