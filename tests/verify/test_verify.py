"""``omnisync verify`` against a real sandbox over HTTP, on a lake the real sync wrote (G9).

Each test damages its own copy of one synced lake behind the product's back, as a person or a
broken tool would: rows removed from a bucket file, a row rolled back to an older version, rows
of customers Omnitron does not have, a file replaced by garbage. Request costs are the sandbox's
own count of list requests (``GET /_sandbox/stats``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.client import OmnitronClient
from omnisync.connection import open_client
from omnisync.lake import LakeStorage
from omnisync.orchestration import Local
from omnisync.settings import Settings
from omnisync.state import StateStore
from omnisync.state.times import to_us
from omnisync.sync.context import STREAM
from omnisync.sync.run import run_sync
from omnisync.verify import Outcome, run_verify, verify
from omnisync.verify.repair import repair_windows
from omnisync.verify.run import classify
from sandbox import SandboxServer
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    cli_env,
    omnisync,
    settings_for,
    wait_for_server_clock,
)
from tests.sync.test_deletions import deletion_rows

LIST = "GET /api/v1/customers/"


def list_requests(server: SandboxServer) -> int:
    return int(server.admin.get("stats").json()["requests"].get(LIST, 0))


class Synced:
    """A sandbox and a lake the real sync brought up to date with it."""

    def __init__(self, server: SandboxServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.settings = settings_for(server, root, lag_seconds=0)
        outcome = run_sync(self.settings, False, Local())
        assert isinstance(outcome, dict), outcome

    def copy(self, target: Path) -> Settings:
        """Settings for a copy of this lake and state that a test may damage."""
        shutil.copytree(self.root / "lake", target / "lake")
        shutil.copy(self.root / "state.db", target / "state.db")
        return settings_for(self.server, target, lag_seconds=0)

    def watermark(self, current: Settings | None = None) -> dt.datetime:
        store = StateStore((current or self.settings).state_url.get_secret_value())
        try:
            mark = store.watermarks.get(STREAM)
        finally:
            store.dispose()
        assert mark is not None
        return mark

    def verify(self, current: Settings, full: bool = False, page_size: int = 1000) -> Outcome:
        with open_client(current) as client:
            return verify(
                client, LakeStorage(current.lake), self.watermark(current), page_size, full
            )


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    with SandboxServer(customers=6000, seed=11) as server:
        yield Synced(server, tmp_path_factory.mktemp("synced"))


def bucket_files(lake: str) -> list[Path]:
    return sorted(Path(lake, "customers").glob("bucket=*/part.parquet"))


def rewrite(path: Path, change: Any) -> None:
    """Replace a bucket file with ``change(table)``, as a tool outside omnisync would."""
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def remove_rows(lake: str, pks: set[int]) -> None:
    for path in bucket_files(lake):
        rewrite(path, lambda t: t.filter(pc.invert(pc.is_in(t["pk"], pa.array(sorted(pks))))))


def test_an_equal_lake_is_judged_equal_with_at_most_four_list_requests(
    synced: Synced, tmp_path: Path
) -> None:
    current = synced.copy(tmp_path)
    before = list_requests(synced.server)
    outcome = run_verify(current)
    assert outcome.equal, outcome.line()
    assert list_requests(synced.server) - before <= 4
    assert outcome.requests <= 4
    assert outcome.line().startswith("equal")
    assert Path(str(outcome.report)).is_file()


@pytest.mark.parametrize("offset", [3.0, -10.0])
def test_a_date_only_server_in_any_time_zone_costs_at_most_four_list_requests_when_equal(
    make_sandbox: Any, tmp_path: Path, offset: float
) -> None:
    server = make_sandbox(customers=2500, date_only_filters=True, utc_offset_hours=offset)
    lake = Synced(server, tmp_path)
    before = list_requests(server)
    outcome = run_verify(lake.settings)
    assert outcome.equal, outcome.line()
    assert outcome.datetimes is False
    assert list_requests(server) - before <= 4
    # changes after the watermark are behind there too, whatever the server's time zone
    server.admin.post("modify", json={"count": 7})
    server.admin.post("create", json={"count": 3})
    later = run_verify(lake.settings)
    assert later.equal and later.behind == 10, later.line()
    # and a damaged date-only lake is still caught, exactly
    gone = {r["pk"] for r in server.admin.get("truth").json()["results"][100:103]}
    remove_rows(str(tmp_path / "lake"), gone)
    damaged = run_verify(lake.settings)
    assert set(damaged.found["missing"]) == gone, damaged.line()


def test_verify_asks_with_what_the_syncs_recorded_of_the_server_and_corrects_it(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """The syncs recorded that the server takes only dates: verify asks with dates at once (no
    request is spent learning it). A record that says datetimes, on a server that now refuses
    them, costs one refused request: verify asks with a date and records what it saw."""
    server = make_sandbox(customers=2500, date_only_filters=True, utc_offset_hours=3.0)
    lake = Synced(server, tmp_path)
    store = StateStore(lake.settings.state_url.get_secret_value())
    try:
        assert store.servers.datetime_filters(server.url) is False
        before = list_requests(server)
        outcome = run_verify(lake.settings)
        assert outcome.equal and outcome.datetimes is False, outcome.line()
        assert list_requests(server) - before == outcome.requests <= 3
        store.servers.remember(server.url, True)
        wrong = run_verify(lake.settings)
        assert wrong.equal and wrong.datetimes is False, wrong.line()
        assert store.servers.datetime_filters(server.url) is False
    finally:
        store.dispose()


def test_damage_behind_the_product_s_back_is_caught_with_its_pks_and_kinds(
    synced: Synced, tmp_path: Path
) -> None:
    current = synced.copy(tmp_path)
    lake = current.lake
    files = bucket_files(lake)
    # rows removed from two bucket files
    first, second = pq.read_table(files[1]), pq.read_table(files[2])
    missing = {first["pk"][0].as_py(), first["pk"][7].as_py(), second["pk"][3].as_py()}
    remove_rows(lake, missing)
    # a row rolled back to an older version (a day earlier than the one Omnitron has)
    third = pq.read_table(files[3])
    stale = third["pk"][5].as_py()

    def rolled_back(table: pa.Table) -> pa.Table:
        stamps = table["modified_date"].to_pylist()
        index = table["pk"].to_pylist().index(stale)
        stamps[index] -= dt.timedelta(days=1)
        column = pa.array(stamps, type=table.schema.field("modified_date").type)
        index = table.schema.get_field_index("modified_date")
        return table.set_column(index, "modified_date", column).cast(table.schema)

    rewrite(files[3], rolled_back)
    # customers Omnitron does not have (as if deleted there), written into the lake
    top = max(r["pk"] for r in synced.server.admin.get("truth").json()["results"])
    deleted = {top + 10, top + 11}

    def with_strangers(table: pa.Table) -> pa.Table:
        extra = table.slice(0, 2)
        pks = pa.array(sorted(deleted), type=table.schema.field("pk").type)
        extra = extra.set_column(table.schema.get_field_index("pk"), "pk", pks)
        return pa.concat_tables([table, extra.cast(table.schema)])

    rewrite(files[4], with_strangers)
    outcome = run_verify(current)
    assert not outcome.equal
    assert set(outcome.found["missing"]) == missing
    assert set(outcome.found["deleted"]) == deleted
    # a one-day rollback of an old customer may cancel in every count: --full sees it for sure
    full = run_verify(current, full=True)
    assert set(full.found["stale"]) == {stale}, full.line()
    assert set(full.found["missing"]) == missing and set(full.found["deleted"]) == deleted
    assert outcome.found["stale"] in ([], [stale])


def test_a_recently_changed_customer_rolled_back_in_the_lake_is_stale(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """The likeliest stale row: an update the lake lost. The newest customers are compared
    one by one, so counts need not see it."""
    server = make_sandbox(customers=3000)
    lake = Synced(server, tmp_path)
    old = pq.read_table(f"{lake.settings.lake}/customers")
    changed = server.admin.post("modify", json={"count": 3}).json()["pks"]
    wait_for_server_clock(server, 0)
    assert isinstance(run_sync(lake.settings, False, Local()), dict)
    olds = old.filter(pc.is_in(old["pk"], pa.array(changed)))
    for path in bucket_files(lake.settings.lake):

        def rolled_back(table: pa.Table) -> pa.Table:
            keep = table.filter(pc.invert(pc.is_in(table["pk"], pa.array(changed))))
            mine = olds.filter(pc.is_in(olds["pk"], table["pk"]))
            return pa.concat_tables([keep, mine.select(keep.schema.names).cast(keep.schema)])

        rewrite(path, rolled_back)
    outcome = run_verify(lake.settings)
    assert set(outcome.found["stale"]) == set(changed), outcome.line()
    assert outcome.requests <= 4 + 2 * len(changed)


def test_an_unreadable_file_is_a_finding_and_its_customers_are_missing(
    synced: Synced, tmp_path: Path
) -> None:
    current = synced.copy(tmp_path)
    broken = bucket_files(current.lake)[6]
    lost = set(pq.read_table(broken)["pk"].to_pylist())
    broken.write_bytes(b"PAR1 this is not a parquet file PAR1")
    outcome = run_verify(current)
    assert not outcome.equal
    assert list(outcome.unreadable) == [str(broken.relative_to(current.lake))]
    assert set(outcome.found["missing"]) == lost
    assert "unreadable" in outcome.line()


def test_customers_changed_or_created_after_the_watermark_are_behind_not_different(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(customers=2000)
    lake = Synced(server, tmp_path)
    server.admin.post("modify", json={"count": 25})
    server.admin.post("create", json={"count": 12})
    outcome = run_verify(lake.settings)
    assert outcome.equal, outcome.line()
    assert outcome.behind == 37


def test_verify_on_a_healthy_lake_while_customers_are_edited_exits_equal(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(customers=2000, writers_per_second=200.0)
    lake = Synced(server, tmp_path)
    outcomes = [run_verify(lake.settings) for _ in range(3)]
    assert all(o.equal for o in outcomes), [o.line() for o in outcomes]
    assert outcomes[-1].behind > 0  # the writers did change customers meanwhile


def test_classification_of_a_second_look() -> None:
    watermark = 1_000
    assert classify(None, [5], watermark) == "deleted"
    assert classify(None, [], watermark) is None
    assert classify(2_000, [5], watermark) == "behind"
    assert classify(2_000, [], watermark) == "behind"
    assert classify(2_000, [2_000], watermark) is None
    assert classify(1_000, [], watermark) == "missing"  # at the watermark: the sync read it
    assert classify(500, [], watermark) == "missing"
    assert classify(500, [400], watermark) == "stale"
    assert classify(500, [500, 400], watermark) == "duplicated"
    assert classify(500, [500], watermark) is None


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_cost_grows_with_the_differences_not_with_the_lake(
    synced: Synced, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Customers removed from the lake are found exactly, within O(d·log(N/page)) requests."""
    current = synced.copy(tmp_path_factory.mktemp("cost"))
    pks = sorted(pq.read_table(f"{current.lake}/customers", columns=["pk"])["pk"].to_pylist())
    gone = set(data.draw(st.lists(st.sampled_from(pks), min_size=1, max_size=12, unique=True)))
    remove_rows(current.lake, gone)
    page = 100
    outcome = synced.verify(current, page_size=page)
    assert set(outcome.found["missing"]) == gone
    levels = math.ceil(math.log2(len(pks) / page))
    assert outcome.requests <= 4 + len(gone) * (levels + 3), outcome.requests


def test_the_command_line_says_one_line_and_exits_0_equal_1_different_2_unusable(
    synced: Synced, tmp_path: Path
) -> None:
    current = synced.copy(tmp_path)
    env = cli_env(synced.server, tmp_path, "")
    equal = omnisync(env, "verify")
    assert equal.returncode == 0, equal.stderr[-2000:]
    # the verdict is the command's result: on stdout, alone; progress and logs on stderr
    assert equal.stdout.strip().startswith("equal:") and len(equal.stdout.splitlines()) == 1
    gone = set(pq.read_table(bucket_files(current.lake)[0])["pk"].to_pylist()[:2])
    remove_rows(current.lake, gone)
    different = omnisync(env, "verify")
    assert different.returncode == 1, different.stderr[-2000:]
    line = " ".join(different.stdout.split())
    assert line.startswith("different") and "2 missing" in line
    assert all(str(pk) in line for pk in gone)
    assert "Traceback" not in different.stderr
    (tmp_path / "fresh").mkdir()  # a state database is created in an existing folder only
    fresh = cli_env(synced.server, tmp_path / "fresh", "")
    unusable = omnisync(fresh, "verify")
    assert unusable.returncode == 2
    assert "run `omnisync sync` first" in unusable.stderr
    assert "Traceback" not in unusable.stderr
    # the run log shows the verifications
    shown = omnisync({**env, "COLUMNS": "250"}, "status")
    assert shown.returncode == 0 and "verify" in shown.stdout
    # the last verification's verdict, under its heading
    last = shown.stdout.split("last verification", 1)[1].splitlines()[1]
    assert " verify " in last and " different " in last, shown.stdout
    assert "succeeded" not in last, "a verification that found differences is not a success"
    last = shown.stdout.split("last verification")[1].splitlines()[1]
    assert "verify" in last and "failed" not in last, "status shows the last verification"


def test_repair_re_reads_what_differs_as_a_run_and_the_lake_is_then_equal(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(customers=3000)
    lake = Synced(server, tmp_path)
    current = lake.settings
    old = pq.read_table(f"{current.lake}/customers")
    changed = server.admin.post("modify", json={"count": 3}).json()["pks"]
    wait_for_server_clock(server, 0)
    assert isinstance(run_sync(current, False, Local()), dict)
    files = bucket_files(current.lake)
    olds = old.filter(pc.is_in(old["pk"], pa.array(changed)))
    for path in files:

        def rolled_back(table: pa.Table) -> pa.Table:
            keep = table.filter(pc.invert(pc.is_in(table["pk"], pa.array(changed))))
            mine = olds.filter(pc.is_in(olds["pk"], table["pk"]))
            return pa.concat_tables([keep, mine.select(keep.schema.names).cast(keep.schema)])

        rewrite(path, rolled_back)
    missing = set(pq.read_table(files[1])["pk"].to_pylist()[:4])
    remove_rows(current.lake, missing)
    top = max(r["pk"] for r in server.admin.get("truth").json()["results"])

    def with_strangers(table: pa.Table) -> pa.Table:
        extra = table.slice(0, 2)
        pks = pa.array([top + 5, top + 6], type=table.schema.field("pk").type)
        extra = extra.set_column(table.schema.get_field_index("pk"), "pk", pks)
        return pa.concat_tables([table, extra.cast(table.schema)])

    rewrite(files[2], with_strangers)
    lost = set(pq.read_table(files[3])["pk"].to_pylist())
    files[3].write_bytes(b"not parquet")

    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0")
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-3000:]
    before = list_requests(server)
    done = omnisync(env, "verify", "--repair")
    assert done.returncode == 0, done.stderr[-3000:]
    said = [line for line in done.stdout.splitlines() if line.strip()]
    # on stdout, the verdict first: what was found, what was repaired, the verdict after it
    assert said[0].startswith("different ") and said[-1].startswith("equal: "), said
    assert any(line.startswith("repaired: ") for line in said), said
    # it mends what the verification before it found, without asking the same questions again
    assert "found by the verification at" in said[0]
    repair_requests = list_requests(server) - before
    assert_lake_matches_truth(server, current.lake)
    assert_no_duplicate_versions(current.lake)
    # the customers Omnitron does not have left as every deletion does: logged, then removed
    assert deletion_rows(current.lake) == [top + 5, top + 6]
    assert lost  # a whole bucket file was re-read (its request cost at scale: bench/verify.py)
    store = StateStore(current.state_url.get_secret_value())
    kinds = [run["kind"] for run in store.runs.recent(STREAM, limit=3)]
    store.dispose()
    assert kinds == ["verify", "repair", "verify"]
    # the re-read windows (4 missing, 3 stale, a bucket's customers) and the verify after them
    assert repair_requests < 4 + len(lost) + 7 + 4
    before = list_requests(server)
    assert run_verify(current).equal
    assert list_requests(server) - before <= 4


def test_the_rolling_audit_sees_what_counts_cannot_within_its_period(
    synced: Synced, tmp_path: Path
) -> None:
    """Two customers swapped for two others of the same count, pk half and modified_date half
    cancel in every count; the audit compares one slice per run and covers the lake in 3 runs."""
    current = synced.copy(tmp_path).model_copy(update={"verify_audit_runs": 3})
    files = bucket_files(current.lake)
    table = pq.read_table(files[5])
    stale = table["pk"][9].as_py()

    def a_second_earlier(t: pa.Table) -> pa.Table:
        stamps = t["modified_date"].to_pylist()
        stamps[t["pk"].to_pylist().index(stale)] -= dt.timedelta(seconds=1)
        column = pa.array(stamps, type=t.schema.field("modified_date").type)
        index = t.schema.get_field_index("modified_date")
        return t.set_column(index, "modified_date", column).cast(t.schema)

    rewrite(files[5], a_second_earlier)
    counted = run_verify(current)
    assert counted.equal  # a second's rollback of an old customer: no count changes
    seen: list[list[int]] = []
    slices = []
    for _ in range(3):
        outcome = run_verify(current, audit=True)
        assert outcome.audit is not None
        slices.append((outcome.audit["from"], outcome.audit["to"]))
        seen.append(outcome.found["stale"])
    assert [stale] in seen and seen.count([]) == 2, seen
    # consecutive slices, from the first pk to the end: the whole lake in 3 runs
    assert slices[0][0] is None and slices[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))


@settings(max_examples=200, deadline=None)
@given(
    versions=st.lists(st.integers(0, 10_000), max_size=40),
    lake=st.lists(st.integers(0, 10_000), max_size=200),
    page=st.integers(1, 50),
)
def test_repair_windows_hold_every_version_to_read_and_nothing_twice(
    versions: list[int], lake: list[int], page: int
) -> None:
    windows = repair_windows(versions, np.array(lake, dtype=np.int64), page)
    bounds = [(to_us(lo), to_us(hi)) for lo, hi in windows if lo is not None]
    assert len(bounds) == len(windows)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(bounds))  # in order, disjoint
    for stamp in versions:
        assert sum(lo <= stamp < hi for lo, hi in bounds) == 1
    # each window starts and ends at a version to read: nothing around them is read
    assert {lo for lo, _ in bounds} <= set(versions)
    assert {hi - 1 for _, hi in bounds} <= set(versions)


def test_a_server_that_ignores_sort_and_caps_limit_is_verified_exactly(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """Newest first whatever ``sort`` says, and at most 100 rows an answer whatever ``limit``
    asks: one request more to learn the page it serves, then the same costs."""
    server = make_sandbox(customers=4000, ignore_sort=True, max_limit=100)
    lake = Synced(server, tmp_path)
    before = list_requests(server)
    equal = run_verify(lake.settings)
    assert equal.equal, equal.line()
    assert list_requests(server) - before <= 5
    gone = {r["pk"] for r in server.admin.get("truth").json()["results"][::1300]}
    remove_rows(lake.settings.lake, gone)
    damaged = run_verify(lake.settings)
    assert set(damaged.found["missing"]) == gone, damaged.line()


def test_the_verify_customers_flow_repairs_and_publishes_its_counts(
    prefect_api: str, synced: Synced, tmp_path: Path
) -> None:
    """The daily deployment's flow: a damaged lake is repaired, the run completes with the
    counts as an artifact table; a lake it cannot make equal fails the run."""
    from prefect.artifacts import Artifact

    from flows.verify_customers import KEY
    from flows.verify_customers import verify_customers as flow
    from omnisync.settings import settings_in_effect

    current = synced.copy(tmp_path)
    gone = set(pq.read_table(bucket_files(current.lake)[0])["pk"].to_pylist()[:3])
    remove_rows(current.lake, gone)
    with settings_in_effect(current):
        state = flow(return_state=True)
    assert state.is_completed(), state.message
    counts = state.result()
    assert counts["verdict"] == "equal" and counts["missing"] == 3
    assert counts["repaired: customers re-read and written"] == 3
    table = Artifact.get(KEY)
    assert table is not None and "| missing | 3 |" in str(table.data)
    assert run_verify(current).equal


def test_a_listed_customer_whose_date_cannot_be_read_is_never_called_deleted() -> None:
    """Omnitron lists the customer, so it exists: a repair must not take it out of the lake."""
    import httpx
    import orjson
    from pydantic import SecretStr

    from omnisync.client import CustomerQuery, Throttle
    from omnisync.verify.counts import ServerSide

    records = [
        {"pk": 1, "modified_date": "2024-01-01T00:00:00Z"},
        {"pk": 2, "modified_date": "2024-01-01 00:00:00"},  # no zone: unreadable
    ]
    body = {"count": 2, "next": None, "previous": None, "results": records}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=orjson.dumps(body)))
    client = OmnitronClient(
        "https://omnitron.test",
        token=SecretStr("t"),
        transport=transport,
        throttle=Throttle(1000, 2),
    )
    with client:
        server = ServerSide(client, page_size=100)
        found = server.read_all(CustomerQuery(pk_gte=1, pk_lt=3, sort=None))
    assert set(found) == {1}
    assert server.unreadable == {2}
