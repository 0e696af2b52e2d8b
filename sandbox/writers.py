"""Live writers: a background task that modifies, creates and deletes customers while clients page.

With ``late_commit_seconds`` set, each write gets its ``modified_date`` when it starts but becomes
visible only that many seconds later, like a slow transaction: a client that trusts "nothing older
than my watermark can still appear" loses it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

from sandbox.records import Customer, now_us
from sandbox.seed import FIRST_NAMES, customer_fields, phone_number
from sandbox.store import Store


def random_changes(rng: random.Random) -> dict[str, Any]:
    """A plausible edit: what a customer, a store clerk or an import would change."""
    edits: list[dict[str, Any]] = [
        {"first_name": rng.choice(FIRST_NAMES)},
        {"is_active": rng.random() < 0.9},
        {"sms_allowed": rng.random() < 0.5, "email_allowed": rng.random() < 0.5},
        {"phone_number": phone_number(rng)},
        {"erp_code": f"C{rng.randrange(10**7):07d}" if rng.random() < 0.8 else None},
        {"extra_field": {"loyalty_tier": rng.choice(("silver", "gold")), "source": "web"}},
    ]
    return rng.choice(edits)


def modify(
    store: Store,
    rng: random.Random,
    pks: list[int],
    *,
    same_timestamp: bool = False,
    late_seconds: float = 0.0,
) -> list[Customer]:
    """Apply a random edit to each pk (one shared modified_date if ``same_timestamp``)."""
    stamp = now_us()
    done = []
    for pk in pks:
        if late_seconds and store.has_pending(pk):
            continue
        at = stamp if same_timestamp else now_us()
        if late_seconds:
            customer = store.by_pk[pk].replaced(random_changes(rng), at)
            store.commit_later(customer, at + int(late_seconds * 1e6))
        else:
            customer = store.update(pk, random_changes(rng), at)
        done.append(customer)
    return done


def create(
    store: Store, rng: random.Random, count: int, *, late_seconds: float = 0.0
) -> list[Customer]:
    done = []
    for _ in range(count):
        at = now_us()
        pk = store.allocate_pk()
        data = customer_fields(rng, pk, dt.datetime.now(dt.UTC))
        data["pk"] = pk
        customer = Customer.build(data, at, at)
        if late_seconds:
            store.commit_later(customer, at + int(late_seconds * 1e6))
        else:
            store.put(customer)
        done.append(customer)
    return done


def to_delete(body: Any, store: Store, rng: random.Random) -> list[int]:
    """The pks an admin's delete names: ``{"pks": [1, 2]}``, or ``{"count": N}`` random ones.
    Raises ValueError, saying what to send, for anything else: a delete without a body once
    deleted a random customer."""
    usage = 'send {"pks": [<pk>, ...]} to delete those customers, or {"count": N} for N random ones'
    if not isinstance(body, dict) or ("pks" in body) == ("count" in body):
        raise ValueError(f"say which customers to delete: {usage}")
    if "pks" in body:
        pks = body["pks"]
        if not isinstance(pks, list) or not pks or not all(_whole(p) for p in pks):
            raise ValueError(f'"pks" must be a non-empty list of whole numbers: {usage}')
        return [int(p) for p in pks]
    count = body["count"]
    if not _whole(count) or count < 1:
        raise ValueError(f'"count" must be a whole number from 1: {usage}')
    return store.random_pks(rng, int(count))


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def delete(store: Store, pks: list[int]) -> list[int]:
    """Delete each pk that exists, as Omnitron's admin or a customer merge does (the API itself
    answers DELETE with 405); the pks really deleted."""
    return [pk for pk in pks if store.delete(pk)]


async def run_writers(store: Store, get_modes: Any, rng: random.Random) -> None:
    """Forever: one writer operation every 1/rate seconds, reading the modes each time."""
    while True:
        modes = get_modes()
        rate = modes.writers_per_second
        if rate <= 0:
            await asyncio.sleep(0.05)
            continue
        await asyncio.sleep(1.0 / rate)
        modes = get_modes()
        if modes.writers_per_second <= 0:
            continue
        store.flush_due()
        if rng.random() < modes.writer_create_share or not len(store):
            create(store, rng, 1, late_seconds=modes.late_commit_seconds)
        elif modes.writer_delete_share and rng.random() < modes.writer_delete_share:
            delete(store, store.random_pks(rng, 1))
        else:
            modify(store, rng, store.random_pks(rng, 1), late_seconds=modes.late_commit_seconds)
