"""The state of deletion checks (G9): customers confirmed deleted in Omnitron, kept until the
lake has applied them, and the pk ranges a run could not narrow within its request budget.

A deletion is recorded (fenced) before the lake changes, with the moment it was detected: a run
killed while applying it applies the same rows again, so the change log never records one
deletion twice. Ranges left over are replaced as a whole by each run that checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, String, Table, delete, insert, select, update

from omnisync.state.fence import Fence
from omnisync.state.schema import metadata
from omnisync.state.store import StateStore
from omnisync.state.times import from_us, iso, now_us, to_us

deletions = Table(
    "omnisync_deletions",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("pk", BigInteger, primary_key=True, autoincrement=False),
    Column("detected_us", BigInteger, nullable=False),
    Column("detected_iso", String(40), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("applied_us", BigInteger),
)

deletion_ranges = Table(
    "omnisync_deletion_ranges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(100), nullable=False, index=True),
    Column("lo", BigInteger),
    Column("hi", BigInteger),
    Column("run_id", String(64), nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
)

PkSpan = tuple[int | None, int | None]


@dataclass(frozen=True)
class Deletion:
    pk: int
    detected: dt.datetime
    run_id: str


def record_deletions(
    store: StateStore, stream: str, pks: list[int], detected: dt.datetime, run_id: str, fence: Fence
) -> list[int]:
    """Record confirmed deletions, not yet applied; returns the pks newly recorded, sorted.

    A pk whose deletion is still pending keeps its row (a repeated run applies the same
    deletion, logged once). A pk whose deletion was applied before and that is confirmed absent
    again came back into the lake after it (a plan an interrupted run left open, a restored
    file): its row is reset to pending with this detection, so it is logged, removed and erased
    again, instead of staying in the lake for good.
    """
    wanted = sorted(set(pks))
    with store.engine.begin() as connection:
        fence.touch(connection)
        known = {
            int(pk): applied
            for pk, applied in connection.execute(
                select(deletions.c.pk, deletions.c.applied_us).where(
                    deletions.c.stream == stream, deletions.c.pk.in_(wanted)
                )
            )
        }
        fresh = [pk for pk in wanted if pk not in known]
        again = [pk for pk in wanted if pk in known and known[pk] is not None]
        values = {"detected_us": to_us(detected), "detected_iso": iso(detected), "run_id": run_id}
        if fresh:
            connection.execute(
                insert(deletions), [{"stream": stream, "pk": pk, **values} for pk in fresh]
            )
        if again:
            connection.execute(
                update(deletions)
                .where(deletions.c.stream == stream, deletions.c.pk.in_(again))
                .values(applied_us=None, **values)
            )
    return sorted(fresh + again)


def pending_deletions(store: StateStore, stream: str) -> list[Deletion]:
    """Deletions recorded but not yet applied to the lake, oldest first."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(deletions.c.pk, deletions.c.detected_us, deletions.c.run_id)
            .where(deletions.c.stream == stream, deletions.c.applied_us.is_(None))
            .order_by(deletions.c.detected_us, deletions.c.pk)
        ).all()
    return [Deletion(int(pk), from_us(int(us)), str(run)) for pk, us, run in rows]


def mark_applied(store: StateStore, stream: str, pks: list[int], fence: Fence) -> None:
    with store.engine.begin() as connection:
        fence.touch(connection)
        connection.execute(
            update(deletions)
            .where(deletions.c.stream == stream, deletions.c.pk.in_(pks))
            .values(applied_us=now_us())
        )


def carried_ranges(store: StateStore, stream: str) -> list[PkSpan]:
    """The pk ranges the last checking run left to narrow (empty: none)."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(deletion_ranges.c.lo, deletion_ranges.c.hi)
            .where(deletion_ranges.c.stream == stream)
            .order_by(deletion_ranges.c.id)
        ).all()
    return [(None if lo is None else int(lo), None if hi is None else int(hi)) for lo, hi in rows]


def carry_ranges(
    store: StateStore, stream: str, spans: list[PkSpan], run_id: str, fence: Fence
) -> None:
    """Replace the ranges left to narrow by ``spans`` (empty: nothing is left)."""
    with store.engine.begin() as connection:
        fence.touch(connection)
        connection.execute(delete(deletion_ranges).where(deletion_ranges.c.stream == stream))
        if spans:
            recorded = now_us()
            connection.execute(
                insert(deletion_ranges),
                [
                    {
                        "stream": stream,
                        "lo": lo,
                        "hi": hi,
                        "run_id": run_id,
                        "recorded_us": recorded,
                    }
                    for lo, hi in spans
                ],
            )


def recorded_deletions(store: StateStore, stream: str, pks: list[int]) -> set[int]:
    """Which of ``pks`` have a deletion recorded (applied or not)."""
    found: set[int] = set()
    with store.engine.connect() as connection:
        for start in range(0, len(pks), 1000):
            found.update(
                int(pk)
                for pk in connection.execute(
                    select(deletions.c.pk).where(
                        deletions.c.stream == stream,
                        deletions.c.pk.in_(pks[start : start + 1000]),
                    )
                ).scalars()
            )
    return found
