"""PATCHes whose answer was lost (G7): applied or not, they are never sent again blindly, and a
person's edit made right after one is never overwritten, by the retry or by a later run.

The sandbox applies such a PATCH, then loses its answer (a proxy's 502, a reset, a timeout),
and can have a person edit the customer's erp_code at once, before the client learns anything.
It counts every applied PATCH per customer: a customer PATCHed twice shows as 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from pydantic import SecretStr

from omnisync.client import OmnitronClient, Throttle
from omnisync.erp.change_guard import ChangeGuard
from omnisync.erp.holds import read_ledger
from omnisync.erp.outcomes import (
    CONFLICT,
    DELETED,
    EDITED,
    HELD,
    OK_ANSWER_LOST,
    UNCONFIRMED,
    Attempt,
    is_failure,
    parse_moment,
)
from omnisync.erp.settling import record_settled
from omnisync.erp.writeback import write_back
from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.conftest import truth
from tests.erp.test_writeback_guard import _ledger_row, plan_for, store_in

Make = Callable[..., SandboxServer]


def client_for(server: SandboxServer, **options: Any) -> OmnitronClient:
    defaults: dict[str, Any] = {
        "username": "sandbox",
        "password": SecretStr("sandbox"),
        "throttle": Throttle(1000, 4),
        "page_size": 100,
        "timeout_seconds": 2.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "backoff_jitter": 0.0,
    }
    return OmnitronClient(server.url, **{**defaults, **options})


def stats(server: SandboxServer) -> dict[str, Any]:
    body: dict[str, Any] = server.admin.get("stats").json()
    return body


def run(
    server: SandboxServer,
    store: StateStore,
    rows: list[dict[str, Any]],
    run_id: str,
    concurrency: int = 4,
    **options: Any,
) -> dict[int, Attempt]:
    since = min(dt.datetime.fromisoformat(r["modified_date"]) for r in rows)
    with client_for(server, **options) as client:
        guard = ChangeGuard(client, since, dt.timedelta(seconds=60), page_size=100)
        attempts = write_back(client, store, plan_for(rows), run_id, concurrency, guard=guard)
    return {a.pk: a for a in attempts}


def test_lost_answers_are_re_read_never_resent_and_a_person_s_edit_stands(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=400)
    server.admin.patch("modes", json={"lost_answers": {"timeout_seconds": 3.0}}).raise_for_status()
    lost = [{"kind": kind, "edit": edit} for kind in ("502", "reset", "timeout") for edit in (0, 1)]
    server.admin.post("lost_answers/next", json={"answers": lost}).raise_for_status()
    rows = truth(server)[:120]
    store = store_in(tmp_path)

    attempts = run(server, store, rows, "first")

    seen = stats(server)
    lost_pks = {int(pk): kind for pk, kind in seen["lost_answers"].items()}
    edited = {int(pk): code for pk, code in seen["person_edits"].items()}
    assert sorted(lost_pks.values()) == sorted(a["kind"] for a in lost)
    assert len(edited) == 3
    assert all(n == 1 for n in seen["patches"].values()), "no customer is PATCHed twice"
    codes = {r["pk"]: r["erp_code"] for r in truth(server)}
    for pk, attempt in attempts.items():
        assert attempt.lost_answers == (1 if pk in lost_pks else 0)
        if pk in edited:
            assert attempt.outcome == CONFLICT, attempt
            assert codes[pk] == edited[pk], "the person's edit stands"
        elif pk in lost_pks:
            assert attempt.outcome == OK_ANSWER_LOST, attempt
            assert codes[pk] == f"ERP-{pk}"
        else:
            assert attempt.outcome == "ok", attempt
            assert codes[pk] == f"ERP-{pk}"
        assert not is_failure(attempt.outcome)
    ledger = {row["pk"]: row for row in store.ledger.rows(run_id="first")}
    assert {pk for pk, row in ledger.items() if row["lost_answers"]} == set(lost_pks)
    assert {pk for pk, row in ledger.items() if row["outcome"] == CONFLICT} == set(edited)
    assert all(ledger[pk]["seen_modified_iso"] for pk in lost_pks)

    # The next reconcile, before any sync: the lake (so the plan) still shows every customer as
    # it was. A person who reverted the code by hand after the lost answer looks like a customer
    # still to set; the ledger keeps it, and every other person's edit, untouched.
    reverted = next(iter(edited))
    with client_for(server) as person:
        person.patch_customer(
            reverted, {"erp_code": next(r for r in rows if r["pk"] == reverted)["erp_code"]}
        )
    before = stats(server)["patches"]
    again = run(server, store, rows, "second")
    after = stats(server)["patches"]
    assert after == before, "the second run sends nothing"
    assert {pk for pk, a in again.items() if a.outcome == HELD} == set(edited)
    assert all(
        a.outcome == "skipped_already_patched" for pk, a in again.items() if pk not in edited
    )
    now = {r["pk"]: r["erp_code"] for r in truth(server)}
    assert all(now[pk] == codes[pk] for pk in edited if pk != reverted)
    assert now[reverted] == next(r for r in rows if r["pk"] == reverted)["erp_code"]

    # After a sync, the lake shows what the people left; the ERP still wants its codes, and the
    # plan calls that a correction. The people's codes still stand.
    synced = [r for r in truth(server) if r["pk"] in attempts and r["erp_code"] != f"ERP-{r['pk']}"]
    assert {r["pk"] for r in synced} == set(edited)
    third = run(server, store, synced, "third")
    assert stats(server)["patches"] == after, "nothing is sent over a person's code"
    assert {pk for pk, a in third.items() if a.outcome == HELD} == set(edited)
    assert {r["pk"]: r["erp_code"] for r in truth(server)} == now


def test_a_lost_answer_of_a_patch_never_applied_is_sent_again_once_the_re_read_shows_it(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=50)
    rows = truth(server)[:1]
    # The PATCH fails before it reaches the API (a 500 from in front of it): not applied.
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    attempts = run(server, store_in(tmp_path), rows, "run", concurrency=1)
    pk = rows[0]["pk"]
    assert attempts[pk].outcome == "ok_resent" and attempts[pk].lost_answers == 1
    assert stats(server)["patches"] == {str(pk): 1}
    assert truth(server)[0]["erp_code"] == f"ERP-{pk}"


@pytest.mark.parametrize("failure", ["timeout", "403"])
def test_an_unreadable_re_read_after_a_lost_answer_sends_nothing_more_until_a_look_settles_it(
    make_sandbox: Make, tmp_path: Path, failure: str
) -> None:
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    server.admin.post("lost_answers/next", json={"answers": [{"kind": "502"}]}).raise_for_status()
    transport = ReadsFailAfterAPatch(failure)
    first = run(server, store, rows, "first", concurrency=1, transport=transport)
    assert first[pk].outcome == UNCONFIRMED and is_failure(UNCONFIRMED)
    assert stats(server)["patches"] == {str(pk): 1}

    # The next run, from the same lake, reads the customer first: that PATCH was applied.
    second = run(server, store, rows, "second", concurrency=1)
    assert second[pk].outcome == OK_ANSWER_LOST
    assert stats(server)["patches"] == {str(pk): 1}, "not sent again"


def test_an_unconfirmed_patch_that_was_never_applied_lands_once_in_the_next_run(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    # A 500 from in front of the API: not applied; then no re-read can be had.
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    first = run(server, store, rows, "first", concurrency=1, transport=ReadsFailAfterAPatch())
    assert first[pk].outcome == UNCONFIRMED
    assert stats(server)["patches"] == {}

    second = run(server, store, rows, "second", concurrency=1)
    assert second[pk].outcome == "ok"
    assert stats(server)["patches"] == {str(pk): 1}
    assert truth(server)[0]["erp_code"] == f"ERP-{pk}"

    third = run(server, store, rows, "third", concurrency=1)
    assert third[pk].outcome == "skipped_already_patched"


def test_an_unconfirmed_patch_followed_by_a_person_s_edit_is_held_until_a_sync(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    answers = {"answers": [{"kind": "reset", "edit": True}]}
    server.admin.post("lost_answers/next", json=answers).raise_for_status()
    first = run(server, store, rows, "first", concurrency=1, transport=ReadsFailAfterAPatch())
    assert first[pk].outcome == UNCONFIRMED
    with client_for(server) as person:  # the person puts the old code back by hand
        person.patch_customer(pk, {"erp_code": rows[0]["erp_code"]})
    patched = stats(server)["patches"][str(pk)]
    second = run(server, store, rows, "second", concurrency=1)
    assert second[pk].outcome == CONFLICT, "read again: the customer changed since"
    assert stats(server)["patches"][str(pk)] == patched
    assert truth(server)[0]["erp_code"] == rows[0]["erp_code"], "the person's edit stands"

    synced = truth(server)[0]  # a sync brought the person's record into the lake
    third = run(server, store, [synced], "third", concurrency=1)
    assert third[pk].outcome == HELD, "the person's code stands after a sync too"
    assert stats(server)["patches"][str(pk)] == patched


def wanting(code: str, rows: list[dict[str, Any]]) -> Any:
    """The plan of ``rows`` with the ERP wanting ``code`` for each."""
    plan = plan_for(rows)
    return plan.set_column(
        plan.schema.get_field_index("erp_code"), "erp_code", pa.array([code] * len(rows))
    )


def run_plan(server: SandboxServer, store: StateStore, plan: Any, run_id: str) -> Attempt:
    with client_for(server) as client:
        (attempt,) = write_back(client, store, plan, run_id, 1)
    return attempt


def _unconfirmed(make_sandbox: Make, tmp_path: Path) -> tuple[Any, Any, int, StateStore]:
    """One customer whose PATCH of ``ERP-<pk>`` is unconfirmed: answered 500 from in front of
    the API (not applied), then no re-read could be had."""
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    first = run(server, store, rows, "first", concurrency=1, transport=ReadsFailAfterAPatch())
    assert first[pk].outcome == UNCONFIRMED and stats(server)["patches"] == {}
    return server, rows, pk, store


def lost_rows(store: StateStore, run_id: str, code: str) -> list[str]:
    return [r["outcome"] for r in store.ledger.rows(run_id=run_id) if r["erp_code"] == code]


def test_after_an_unconfirmed_patch_and_an_edit_the_erp_s_next_code_lands(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """After the unconfirmed PATCH, someone edits another field. The re-read cannot tell
    whether that PATCH landed (and a person put the old code back) or not: its code is held
    back, on a row of its own. The ERP wants another code now: a new change, which lands in
    the same run (it used to be held for good, under the lost PATCH's conflict)."""
    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"first_name": "Edited"})
    second = run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    assert second.outcome == "ok" and second.erp_code == "ERP-NEXT", second
    assert lost_rows(store, "second", f"ERP-{pk}") == [CONFLICT]
    assert truth(server)[0]["erp_code"] == "ERP-NEXT"
    assert stats(server)["patches"] == {str(pk): 2}, "the person's edit, then ERP-NEXT once"
    back = run_plan(server, store, wanting(f"ERP-{pk}", truth(server)[:1]), "third")
    assert back.outcome == "ok", "ERP-NEXT is this product's: the ERP going back is a change"


def test_after_an_unconfirmed_patch_and_a_person_s_code_no_code_goes_over_it(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """After the unconfirmed PATCH, a person sets their own code. The ERP then wants another
    code (planned from the older lake: skipped, the person's code stands), then, after a sync,
    that code again, and then the lost one: neither is ever sent over the person's (the lost
    one used to be, once a row of the other code came after its conflict)."""
    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "PERSON"})
    second = run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    assert second.outcome == "skipped_changed_since_plan", second
    assert lost_rows(store, "second", f"ERP-{pk}") == [CONFLICT]
    synced = truth(server)[:1]
    third = run_plan(server, store, wanting("ERP-NEXT", synced), "third")
    assert third.outcome == EDITED, third
    fourth = run_plan(server, store, wanting(f"ERP-{pk}", synced), "fourth")
    assert fourth.outcome == HELD, fourth
    assert truth(server)[0]["erp_code"] == "PERSON"
    assert stats(server)["patches"] == {str(pk): 1}, "only the person's"


def test_after_an_unconfirmed_patch_a_person_setting_the_erp_s_next_code_is_no_landing(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """Found by a review: a person sets the code the ERP wants next; the re-read was taken for
    the lost PATCH applied, its hold ended, and the ERP going back to the lost code sent it
    over the person's. The lost code is held (a conflict); the person's code is right."""
    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "ERP-NEXT"})
    run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    assert lost_rows(store, "second", f"ERP-{pk}") == [CONFLICT]
    back = run_plan(server, store, wanting(f"ERP-{pk}", truth(server)[:1]), "third")
    assert back.outcome == HELD, back
    assert truth(server)[0]["erp_code"] == "ERP-NEXT"


def test_a_lost_code_s_conflict_ends_when_the_erp_takes_the_person_s_code(
    make_sandbox: Make, tmp_path: Path
) -> None:
    from omnisync.erp.holds import read_ledger
    from omnisync.erp.outcomes import parse_moment
    from omnisync.erp.settling import record_settled

    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "PERSON"})
    run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    assert read_ledger(store.ledger.rows()).conflicts[pk]
    now = truth(server)[0]
    agreed = pa.table(
        {
            "pk": pa.array([pk], pa.int64()),
            "erp_code": ["PERSON"],
            "modified_date": [parse_moment(now["modified_date"])],
        }
    )
    assert record_settled(store, "settle", agreed) == 1
    view = read_ledger(store.ledger.rows())
    assert pk not in view.holds and not view.conflicts.get(pk)
    again = run_plan(server, store, wanting(f"ERP-{pk}", truth(server)[:1]), "later")
    assert again.outcome == "ok", "after the ERP agreed, its next code is a new decision"


def _then_ours_landed_unconfirmed(
    make_sandbox: Make, tmp_path: Path, wanted: str
) -> tuple[SandboxServer, StateStore, int, list[dict[str, Any]]]:
    """X unconfirmed; a person sets P; the ERP wants ``wanted`` (a conflict of X); after a sync
    the ERP's ERP-Z goes over P: applied, its answer lost, the re-read unreadable (unconfirmed).
    Returns the server, the store, the pk and the synced record (Z not in it yet)."""
    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "P"})
    run_plan(server, store, wanting(wanted, rows), "second")
    synced = truth(server)[:1]
    server.admin.post("lost_answers/next", json={"answers": [{"kind": "502"}]}).raise_for_status()
    with client_for(server, transport=ReadsFailAfterAPatch()) as client:
        (z,) = write_back(client, store, wanting("ERP-Z", synced), "z", 1)
    assert z.outcome == UNCONFIRMED, z
    assert truth(server)[0]["erp_code"] == "ERP-Z", "Z landed; the ERP's own decision"
    return server, store, pk, synced


# Found by a review of the lost code's conflict, each failing before: sequences over several
# runs, their docstrings telling what used to happen.


def agree(store: StateStore, server: Any, pk: int, run_id: str) -> int:
    """The ERP takes the code Omnitron holds now (a reconcile's already_right row)."""
    now = truth(server)[0]
    agreed = pa.table(
        {
            "pk": pa.array([pk], pa.int64()),
            "erp_code": [now["erp_code"]],
            "modified_date": [parse_moment(now["modified_date"])],
        }
    )
    return record_settled(store, run_id, agreed)


def test_a_lost_code_s_conflict_ends_with_a_settle_of_a_later_hold(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X unconfirmed; a person sets P1; the ERP wants Y (conflict X seen P1, Y skipped); the
    person sets P2; the ERP wants W (skipped, hold W seen P2); the ERP then takes P2: the
    latest hold is settled, the conflict of X (seen P1, a code gone from Omnitron) is not, and
    record_settled never looks at the pk again. The doc says a conflict ends when "the ERP
    takes the code Omnitron holds"; test_a_lost_code_s_conflict_ends_when_the_erp_takes_the_
    person_s_code says the ERP's next code after that is "a new decision"."""
    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "P1"})
    run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    assert lost_rows(store, "second", f"ERP-{pk}") == ["conflict"]
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "P2"})
    third = run_plan(server, store, wanting("ERP-W", rows), "third")
    assert third.outcome == "skipped_changed_since_plan", third
    assert agree(store, server, pk, "settle") == 1
    view = read_ledger(store.ledger.rows())
    assert pk not in view.holds
    x = run_plan(server, store, wanting(f"ERP-{pk}", truth(server)[:1]), "x").outcome
    assert not view.conflicts.get(pk), f"conflict outlives the settle: {view.conflicts}; X: {x}"


def test_a_lost_code_s_conflict_never_hides_a_later_unconfirmed_patch(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X unconfirmed; a person sets P; ERP wants Y (conflict X). After a sync the ERP decides Z
    over P: sent, applied, answer lost, re-read unreadable (unconfirmed Z). Omnitron holds Z,
    P is gone. The ERP agrees on Z: record_settled ends nothing (latest hold unconfirmed). The
    ERP then wants X: the conflict hold is chosen, so Z's PATCH is never re-read and X is held
    run after run, though nobody edited since Z landed."""
    server, store, pk, _ = _then_ours_landed_unconfirmed(make_sandbox, tmp_path, "ERP-NEXT")
    agree(store, server, pk, "settle")
    synced = truth(server)[:1]
    outcomes = [
        run_plan(server, store, wanting(f"ERP-{pk}", synced), f"x{i}").outcome for i in range(3)
    ]
    assert outcomes != [HELD] * 3, "X held for good; Z's lost PATCH never re-read"


def test_a_lost_patch_the_re_read_shows_applied_lets_the_next_code_land_at_once(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X sent, applied, answer lost, unreadable re-read. The ERP wants Y next: the re-read
    shows X (an ok_answer_lost row), and Y is checked against X: it lands in that run (it was
    skipped as changed in Omnitron, though nobody edited, and landed a run later)."""
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    server.admin.post("lost_answers/next", json={"answers": [{"kind": "502"}]}).raise_for_status()
    first = run(server, store, rows, "first", concurrency=1, transport=ReadsFailAfterAPatch())
    assert first[pk].outcome == UNCONFIRMED
    second = run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    assert lost_rows(store, "second", f"ERP-{pk}") == ["ok_answer_lost"]
    assert second.outcome == "ok", second


def test_a_conflict_ends_when_the_erp_takes_the_person_s_code_over_an_unconfirmed_hold(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X unconfirmed; a person sets P; the ERP wants Y (conflict X seen P). After a sync the
    ERP tries Z (previous P): a 500 from in front of the API (not applied), re-read unreadable:
    unconfirmed Z, Omnitron still P. The ERP then takes P: record_settled writes nothing (the
    latest hold is unconfirmed), so the conflict of X stands, and when the ERP wants X it is
    held run after run: the conflict is chosen over Z's hold, whose re-read would settle it."""
    server, rows, pk, store = _unconfirmed(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "P"})
    run_plan(server, store, wanting("ERP-NEXT", rows), "second")
    synced = truth(server)[:1]
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    with client_for(server, transport=ReadsFailAfterAPatch()) as client:
        (z,) = write_back(client, store, wanting("ERP-Z", synced), "z", 1)
    assert z.outcome == UNCONFIRMED, z
    assert truth(server)[0]["erp_code"] == "P"
    settled = agree(store, server, pk, "settle")  # the ERP takes the person's code
    view = read_ledger(store.ledger.rows())
    outcomes = [
        run_plan(server, store, wanting(f"ERP-{pk}", truth(server)[:1]), f"x{i}").outcome
        for i in range(3)
    ]
    assert settled == 1 and not view.conflicts.get(pk), (settled, view.conflicts, outcomes)


# Found by a third review, each failing before.


def agreed_at(pk: int, code: str | None, when: str) -> pa.Table:
    """A reconcile's already_right row: the ERP and the LAKE agree on ``code`` at version
    ``when`` (the lake may be older than Omnitron)."""
    return pa.table(
        {
            "pk": pa.array([pk], pa.int64()),
            "erp_code": [code],
            "modified_date": pa.array([parse_moment(when)], pa.timestamp("us", tz="UTC")),
        }
    )


def test_a_stale_lake_agreeing_on_the_lost_code_does_not_release_it_over_a_person_s_code(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X sent, applied, answer lost, re-read unreadable (unconfirmed). A sync brings X (t1).
    A person sets P (t2). The ERP wants Y (planned from the t1 lake): the re-read notes the
    conflict of X (seen P at t2); Y is skipped. The ERP goes back to X before any sync: the lake
    (t1, older than the conflict's re-read) shows X, already_right, and record_settled ends the
    conflict (any code ends it, at any version). After the sync, X is sent over P."""
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    x = f"ERP-{pk}"
    server.admin.post("lost_answers/next", json={"answers": [{"kind": "502"}]}).raise_for_status()
    first = run(server, store, rows, "first", concurrency=1, transport=ReadsFailAfterAPatch())
    assert first[pk].outcome == UNCONFIRMED
    lake_t1 = truth(server)[:1]
    assert lake_t1[0]["erp_code"] == x
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "P"})
    second = run_plan(server, store, wanting("ERP-Y", lake_t1), "second")
    assert second.outcome == "skipped_changed_since_plan", second
    assert lost_rows(store, "second", x) == [CONFLICT]
    # the ERP wants X again; the lake (t1) still shows X: Omnitron has held P since t2
    ended = record_settled(store, "settle", agreed_at(pk, x, lake_t1[0]["modified_date"]))
    synced = truth(server)[:1]
    again = run_plan(server, store, wanting(x, synced), "third")
    assert truth(server)[0]["erp_code"] == "P", (
        f"X sent over the person's P (settled={ended}, outcome={again.outcome})"
    )


def test_a_same_code_conflict_is_not_ended_by_the_lake_s_old_code(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X unconfirmed (not applied). A person sets P. The ERP still wants X (same lake): the
    re-read records a conflict of X (the change's own row). The ERP then takes the lake's OLD
    code C0 (t0, before P): e073a31 required the person's code (C0 != P, nothing ended);
    cf35ab7 ends every standing conflict with any agreed code. After a sync, X goes over P."""
    server = make_sandbox(customers=50)
    row = next(r for r in truth(server) if r["erp_code"] is not None)
    rows, pk, store = [row], int(row["pk"]), store_in(tmp_path)
    x = f"ERP-{pk}"
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    first = run(server, store, rows, "first", concurrency=1, transport=ReadsFailAfterAPatch())
    assert first[pk].outcome == UNCONFIRMED
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "P"})
    second = run_plan(server, store, wanting(x, rows), "second")
    assert second.outcome == CONFLICT, second
    assert x in read_ledger(store.ledger.rows()).conflicts[pk], "the same-code conflict lands"
    ended = record_settled(store, "settle", agreed_at(pk, row["erp_code"], row["modified_date"]))
    synced = [r for r in truth(server) if r["pk"] == pk]
    again = run_plan(server, store, wanting(x, synced), "third")
    now = next(r for r in truth(server) if r["pk"] == pk)["erp_code"]
    assert now == "P", f"X sent over P (settled={ended}, outcome={again.outcome})"


def test_a_landed_patch_of_ours_releases_the_conflict_in_the_run_that_sees_it(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """X unconfirmed; a person sets P; the ERP wants Y (conflict X, Y skipped). After a sync the
    ERP sends Z over P: applied, answer lost, unreadable (unconfirmed Z). The ERP wants X: the
    re-read notes Z applied (ok_answer_lost, which ends every conflict in read_ledger), yet
    held() then checks the conflict of X from the view read before: X is held for a run,
    though nobody edited since Z landed (and the HELD row blames P, gone from Omnitron)."""
    server, store, pk, synced = _then_ours_landed_unconfirmed(make_sandbox, tmp_path, "ERP-Y")
    x = f"ERP-{pk}"
    outcomes = [run_plan(server, store, wanting(x, synced), f"x{i}").outcome for i in range(2)]
    assert lost_rows(store, "x0", "ERP-Z") == ["ok_answer_lost"]
    assert outcomes[0] == "ok", outcomes


class CountingClient(OmnitronClient):
    reads = 0

    def get_customer(self, pk: int) -> Any:  # type: ignore[override]
        type(self).reads += 1
        return {"pk": pk, "erp_code": "P2", "modified_date": "2026-01-05T00:00:00Z"}

    def patch_customer(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise AssertionError("nothing may be sent")


def test_held_re_reads_once_and_notes_one_row_then_the_standing_conflict_holds(
    tmp_path: Path,
) -> None:
    """conflict X (seen P), then unconfirmed Y (a later run): the ERP wants X. One re-read,
    one noted row (conflict Y), and X is held by the standing conflict."""
    store = store_in(tmp_path)
    _ledger_row(store, "r1", 1, "X", "conflict", "C0", "P")
    _ledger_row(store, "r2", 1, "Y", "unconfirmed", "P", "P", "2026-01-03T00:00:00Z")
    plan = pa.Table.from_pylist(
        [
            {
                "pk": 1,
                "erp_code": "X",
                "previous_erp_code": "P",
                "action": "correct",
                "based_on_modified": dt.datetime(2026, 1, 3, tzinfo=dt.UTC),
                "match_key": "pk",
                "match_value": "1",
            }
        ]
    )
    from transforms.erp.tables import PLAN_SCHEMA

    client = CountingClient("https://omnitron.test", token=SecretStr("t0ken"))
    (attempt,) = write_back(client, store, plan.cast(PLAN_SCHEMA), "r3", 1)
    rows = store.ledger.rows(run_id="r3")
    assert CountingClient.reads == 1
    assert [(r["erp_code"], r["outcome"]) for r in rows] == [("Y", CONFLICT), ("X", HELD)]
    assert attempt.outcome == HELD


def test_a_person_s_code_over_our_code_is_kept_after_an_unconfirmed_patch_of_another(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """Found by a fourth review (it failed before): E1 lands; the ERP wants E2, whose PATCH is
    not applied and gets no readable re-read (unconfirmed); a person overrides E1; after a sync
    the ERP goes back to E1. The re-read cannot tell whether E2 landed before the person's
    code, so E1 is not sent over it (the lost E2 is noted a conflict too)."""
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    assert run_plan(server, store, wanting("E1", rows), "first").outcome == "ok"
    lake = truth(server)[:1]
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    with client_for(server, transport=ReadsFailAfterAPatch()) as client:
        (second,) = write_back(client, store, wanting("E2", lake), "second", 1)
    assert second.outcome == UNCONFIRMED and truth(server)[0]["erp_code"] == "E1"
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "PERSON"})
    synced = truth(server)[:1]
    third = run_plan(server, store, wanting("E1", synced), "third")
    assert third.outcome == CONFLICT and lost_rows(store, "third", "E2") == [CONFLICT], third
    fourth = run_plan(server, store, wanting("E1", synced), "fourth")
    assert fourth.outcome == HELD, fourth
    assert truth(server)[0]["erp_code"] == "PERSON"


def _e1_then_unconfirmed_e2(make_sandbox: Make, tmp_path: Path) -> tuple[Any, int, Any]:
    """E1 lands (answered); a sync; the ERP wants E2: a 500 from in front of the API (not
    applied), and no re-read: unconfirmed. Omnitron still holds this product's E1."""
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    assert run_plan(server, store, wanting("E1", rows), "first").outcome == "ok"
    lake = truth(server)[:1]
    server.admin.post(
        "faults/next", json={"kinds": ["500"], "methods": ["PATCH"]}
    ).raise_for_status()
    with client_for(server, transport=ReadsFailAfterAPatch()) as client:
        (second,) = write_back(client, store, wanting("E2", lake), "second", 1)
    assert second.outcome == UNCONFIRMED, second
    assert truth(server)[0]["erp_code"] == "E1"
    return server, pk, store


def test_a_person_s_code_over_our_code_is_kept_after_a_lost_patch_s_conflict(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """Found by a fourth review (it failed before, and at e073a31): E2's lost PATCH (never
    applied) becomes a conflict after an edit of another field; its conflict row took the
    place of E1's hold, though E1 was still current. The person then overrides E1 and the ERP
    goes back to E1: it was sent over the person's code. Our code's hold is kept now."""
    server, pk, store = _e1_then_unconfirmed_e2(make_sandbox, tmp_path)
    with client_for(server) as person:
        person.patch_customer(pk, {"first_name": "Edited"})
    lake = truth(server)[:1]
    again = run_plan(server, store, wanting("E2", lake), "again")
    assert again.outcome == CONFLICT, again
    with client_for(server) as person:
        person.patch_customer(pk, {"erp_code": "PERSON"})
    synced = truth(server)[:1]
    third = run_plan(server, store, wanting("E1", synced), "third")
    assert truth(server)[0]["erp_code"] == "PERSON", f"E1 sent over the person's: {third}"
    assert stats(server)["patches"]


class EditBeforeTheReRead(httpx.HTTPTransport):
    """Real HTTP; once a PATCH went out, a person sets ``code`` just before the first read of
    one customer (the write-back's re-read after a lost answer)."""

    def __init__(self, server: SandboxServer, pk: int, code: str) -> None:
        super().__init__()
        self.server, self.pk, self.code, self.patched = server, pk, code, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.patched = True
        elif self.patched and request.method == "GET" and request.url.path.count("/") == 5:
            self.patched = False
            with client_for(self.server) as person:
                person.patch_customer(self.pk, {"erp_code": self.code})
        return super().handle_request(request)


def test_our_code_stays_held_when_a_person_edits_it_while_a_patch_s_answer_is_lost(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """Found by a random simulation of write-back sequences (it failed before, and at e073a31):
    E1 lands; the ERP wants E2, whose PATCH is not applied and loses its answer; a person sets
    C1 before the re-read (a conflict of E2, having seen C1); after a sync the ERP goes back
    to E1: it was sent over the person's C1, the row having named C1, not E1, as what it saw."""
    server, rows, pk, store = one_customer(make_sandbox, tmp_path)
    assert run_plan(server, store, wanting("E1", rows), "first").outcome == "ok"
    lake = truth(server)[:1]
    faults = {"kinds": ["500"], "methods": ["PATCH"]}
    server.admin.post("faults/next", json=faults).raise_for_status()
    with client_for(server, transport=EditBeforeTheReRead(server, pk, "C1")) as client:
        (second,) = write_back(client, store, wanting("E2", lake), "second", 1)
    assert second.outcome == CONFLICT and truth(server)[0]["erp_code"] == "C1", second
    synced = truth(server)[:1]
    third = run_plan(server, store, wanting("E1", synced), "third")
    assert truth(server)[0]["erp_code"] == "C1", third
    assert third.outcome == EDITED, third


def one_customer(
    make_sandbox: Make, tmp_path: Path
) -> tuple[SandboxServer, list[dict[str, Any]], int, StateStore]:
    """A small sandbox, its first customer as the plan's only row, and a fresh state store."""
    server = make_sandbox(customers=50)
    rows = truth(server)[:1]
    return server, rows, int(rows[0]["pk"]), store_in(tmp_path)


class ReadsFailAfterAPatch(httpx.HTTPTransport):
    """Real HTTP, except that once a PATCH went out, reading one customer fails: it times out,
    or a proxy in front answers 403."""

    def __init__(self, failure: str = "timeout") -> None:
        super().__init__()
        self.patched = False
        self.failure = failure

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.patched |= request.method == "PATCH"
        if self.patched and request.method == "GET" and request.url.path.count("/") == 5:
            if self.failure == "403":
                return httpx.Response(403, json={"detail": "Forbidden."}, request=request)
            raise httpx.ReadTimeout("no answer", request=request)
        return super().handle_request(request)


def test_a_customer_omnitron_no_longer_has_is_deleted_not_a_failure(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=50)
    rows = truth(server)[:2]
    gone = {**rows[1], "pk": 10_000_000}
    attempts = run(server, store_in(tmp_path), [rows[0], gone], "run", concurrency=1)
    assert attempts[gone["pk"]].outcome == DELETED
    assert not is_failure(DELETED)
    assert attempts[rows[0]["pk"]].outcome == "ok"
    with client_for(server) as client:
        alone = write_back(client, store_in(tmp_path / "x"), plan_for([gone]), "alone", 1)
    assert [a.outcome for a in alone] == [DELETED], "read on its own, too"


def test_lost_answers_at_random_with_people_editing_patch_nobody_twice(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """The shape of a bad night: 5% of PATCHes applied with the answer lost, half of them edited
    by a person at once; every other code lands, none twice, no edit is overwritten."""
    server = make_sandbox(customers=1000)
    modes = {"rate": 0.05, "edit_share": 0.5, "kinds": ["502", "reset"], "seed": 3}
    server.admin.patch("modes", json={"lost_answers": modes}).raise_for_status()
    rows = truth(server)
    store = store_in(tmp_path)
    attempts = run(server, store, rows, "first")
    seen = stats(server)
    lost = {int(pk) for pk in seen["lost_answers"]}
    edited = {int(pk): code for pk, code in seen["person_edits"].items()}
    assert len(lost) >= 25 and edited
    assert max(seen["patches"].values()) == 1
    codes = {r["pk"]: r["erp_code"] for r in truth(server)}
    assert all(codes[pk] == code for pk, code in edited.items())
    assert all(codes[pk] == f"ERP-{pk}" for pk in codes if pk not in edited)
    tally: dict[str, int] = {}
    for attempt in attempts.values():
        tally[attempt.outcome] = tally.get(attempt.outcome, 0) + 1
    assert tally[CONFLICT] == len(edited)
    assert tally[OK_ANSWER_LOST] == len(lost) - len(edited)
    assert tally["ok"] == len(rows) - len(lost)
