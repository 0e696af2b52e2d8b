"""G6 and G9 for quarantined versions: the lake never holds an older version of a customer
silently, verify names it, a retried window quarantines once, a systemic break fails early
however small the runs, and a quarantined customer never hides a deletion."""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from omnisync.lake import LakeStorage
from omnisync.lake.quarantine import DATASET, write_quarantine
from omnisync.orchestration import Local
from omnisync.settings import Settings
from omnisync.state import StateStore
from omnisync.state.quarantine_history import recent_records
from omnisync.sync import BatchRejected, RunContext, open_run, sync_window
from omnisync.sync.deletion_sides import lake_side
from omnisync.sync.run import run_sync
from omnisync.verify import run_verify
from sandbox import SandboxServer
from sandbox.records import now_us
from tests.sync.sandbox_runs import cli_env, omnisync, settings_for
from tests.sync.steps import finish, plan_for
from transforms.quarantine_marks import FLAG, POINTER
from transforms.schema import QUARANTINE_SCHEMA

Make = Callable[..., SandboxServer]


def corrupt(server: SandboxServer, pk: int, **values: Any) -> None:
    """A new version of ``pk`` the API could never type (a broken import into Omnitron)."""
    store = server.state.store
    store.put(store.by_pk[pk].replaced(values, now_us() - 1_000_000))


def sync(settings: Settings) -> dict[str, Any]:
    outcome = run_sync(settings, False, Local())
    assert isinstance(outcome, dict)
    return outcome


def lake_row(lake: str, pk: int) -> dict[str, Any]:
    rows = [r for r in pq.read_table(f"{lake}/customers").to_pylist() if r["pk"] == pk]
    assert len(rows) == 1
    return rows[0]


def quarantine_rows(lake: str, pk: int) -> list[dict[str, Any]]:
    return [r for r in pq.read_table(f"{lake}/{DATASET}").to_pylist() if r["pk"] == pk]


def test_a_quarantined_newest_version_marks_the_older_row_and_verify_names_it(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=200)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=0)
    sync(settings)
    before = lake_row(settings.lake, 17)
    assert not before["_dq_flags"]
    corrupt(server, 17, is_active="yes", first_name="Newer")

    counts = sync(settings)

    assert counts["quarantined"] == 1 and counts["quarantined_marked"] == 1
    row = lake_row(settings.lake, 17)
    assert row["modified_date"] == before["modified_date"], "the newest representable version"
    assert row["first_name"] == before["first_name"], "no value of the refused version"
    assert FLAG in row["_dq_flags"]
    [pointer] = [f for f in row["_dq_flags"] if f.startswith(POINTER)]
    path, version = pointer[len(POINTER) :].split("#")
    [record] = [r for r in pq.read_table(f"{settings.lake}/{path}").to_pylist() if r["pk"] == 17]
    raw = orjson.loads(record["raw"])
    assert raw["is_active"] == "yes" and raw["first_name"] == "Newer"
    assert dt.datetime.fromisoformat(version) > before["modified_date"]
    assert record["reasons"] == ["is_active: not a boolean: 'yes'"]
    store = StateStore(settings.state_url.get_secret_value())
    assert store.watermarks.get("customers") >= dt.datetime.fromisoformat(version), (
        "a recorded quarantined version is not read again run after run"
    )

    outcome = run_verify(settings)
    assert outcome.found["quarantined"] == [17]
    assert outcome.found["stale"] == [] and outcome.found["missing"] == []
    assert outcome.equal, "named, not a difference a repair could mend: exit 0"
    assert "1 quarantined (pks 17)" in outcome.line()

    # Omnitron fixed: the newer version replaces the row, and its marks go with the old row.
    corrupt(server, 17, is_active=True, first_name="Fixed")
    sync(settings)
    fixed = lake_row(settings.lake, 17)
    assert fixed["first_name"] == "Fixed" and not fixed["_dq_flags"]
    assert run_verify(settings).found["quarantined"] == []


def test_a_retried_window_quarantines_its_records_once_even_on_another_day(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=0)
    sync(settings)
    corrupt(server, 42, channel="web")
    with open_run(settings, "retried") as parts:
        plan = plan_for(parts)
        [(lo, hi)] = plan.windows
        sync_window(parts, plan.plan_id, lo, hi)
        [tried] = [f for f in parts.storage.files(DATASET) if quarantine_rows_in(parts, f)]
        # The first try as a try of another day leaves it (a plan resumed after midnight).
        parts.storage.copy(tried, f"{DATASET}/extracted_day=1999-12-31/{posixpath.basename(tried)}")
        parts.storage.delete(tried)
        sync_window(parts, plan.plan_id, lo, hi)  # the retry
        sync_window(parts, plan.plan_id, lo, hi)  # and one more, the same day
        finish(parts, plan)
    assert len(quarantine_rows(settings.lake, 42)) == 1
    assert FLAG in lake_row(settings.lake, 42)["_dq_flags"]


def quarantine_rows_in(parts: RunContext, name: str) -> int:
    return int(parts.storage.read_table(name).num_rows)


def test_writing_a_window_s_quarantine_again_on_another_day_replaces_it(tmp_path: Path) -> None:
    storage = LakeStorage(str(tmp_path))
    monday = dt.datetime(2026, 3, 2, 23, 59, tzinfo=dt.UTC)
    row = {
        "_run_id": "r",
        "_extracted_at": monday,
        "_source": "s",
        "pk": 1,
        "reasons": ["x"],
        "raw": "{}",
    }
    rejected = pa.Table.from_pylist([row], schema=QUARANTINE_SCHEMA)
    write_quarantine(storage, rejected, "w1", monday)
    write_quarantine(storage, rejected, "w2", monday)
    write_quarantine(storage, rejected, "w1", monday + dt.timedelta(minutes=2))
    files = storage.files(DATASET)
    assert [posixpath.basename(f) for f in files] == ["part-w2.parquet", "part-w1.parquet"]
    assert "extracted_day=2026-03-03" in files[1]


def test_a_systemic_break_of_400_customers_fails_the_first_small_run(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """An Omnitron upgrade changes a field's type: every modified customer fails typing. A run
    of 400 is below OMNISYNC_QUARANTINE_MIN_ROWS (1,000) but is judged by its own share."""
    server = make_sandbox(customers=2000)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=0)
    assert settings.quarantine_min_rows == 1000
    sync(settings)
    store = StateStore(settings.state_url.get_secret_value())
    before = store.watermarks.get("customers")
    for pk in range(1, 401):
        corrupt(server, pk, channel="web")
    with pytest.raises(BatchRejected, match=r"400 of 40\d records quarantined") as rejected:
        run_sync(settings, False, Local())
    assert "watermark is held back" in str(rejected.value)
    assert store.watermarks.get("customers") == before
    last = store.runs.recent("customers", limit=1)[0]
    assert last["status"] == "failed" and "held back" in last["error"]


def test_a_slow_break_of_20_customers_a_run_fails_within_three_runs(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """20 broken customers a run never make a run of 1,000: the latest runs, judged together,
    do (more than 5% of OMNISYNC_QUARANTINE_MIN_ROWS quarantined: 51 records)."""
    server = make_sandbox(customers=2000)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=0)
    sync(settings)
    store = StateStore(settings.state_url.get_secret_value())
    outcomes: list[str] = []
    for run in range(5):
        for pk in range(run * 20 + 1, run * 20 + 21):
            corrupt(server, pk, channel="web")
        try:
            counts = sync(settings)
        except BatchRejected as exc:
            outcomes.append(str(exc))
            break
        # the record at the watermark is read again (windows start at it): counted once
        assert counts["quarantined_after_watermark"] == 20 <= counts["quarantined"] <= 21
        outcomes.append("ok")
    assert outcomes[:2] == ["ok", "ok"] and len(outcomes) == 3, outcomes
    assert "records read by this run and the latest ones quarantined" in outcomes[2]
    assert "watermark is held back" in outcomes[2]
    assert store.runs.recent("customers", limit=1)[0]["status"] == "failed"


def test_one_bad_customer_re_read_by_the_lookback_never_stops_a_quiet_stream(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A lookback reads the same quarantined record run after run: it is counted once."""
    server = make_sandbox(customers=300)
    settings = settings_for(
        server, tmp_path, lag_seconds=0, lookback_seconds=3600, quarantine_min_rows=20
    )
    sync(settings)
    corrupt(server, 5, channel="web")
    for _ in range(4):
        counts = sync(settings)
        assert counts["quarantined"] == 1
    assert counts["quarantined_after_watermark"] == 0


def test_a_customer_only_in_quarantine_never_hides_a_deletion(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """|L| - |S| + |M - L|: a customer Omnitron holds whose only version is quarantined would
    cancel a deleted one if it were left out of L."""
    server = make_sandbox(customers=300)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=0)
    corrupt(server, 7, channel="web")  # never typed: no row in customers/
    sync(settings)
    assert 7 not in pq.read_table(f"{settings.lake}/customers").column("pk").to_pylist()
    server.admin.post("delete", json={"pks": [250]})
    counts = sync(settings)
    assert counts["deleted"] == 1
    assert 250 not in pq.read_table(f"{settings.lake}/customers").column("pk").to_pylist()
    with open_run(settings, "look") as parts:
        held = lake_side(parts.snapshot, parts.storage, parts.store)
    assert 7 in held.tolist() and np.all(np.diff(held) >= 0)


def test_a_quarantined_customer_whose_row_was_lost_is_a_difference_and_repaired(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A version in the quarantine does not make a lost row "quarantined": verify calls a
    customer so only when the lake holds its row marked with a pointer at that version (or it
    never had a row). A marked row removed, or its marks dropped, behind the product's back is
    missing or stale (exit 1), and the repair puts the newest logged version back, marked."""
    server = make_sandbox(customers=200)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=0)
    sync(settings)
    before = lake_row(settings.lake, 17)
    corrupt(server, 17, is_active="yes", first_name="Newer")
    corrupt(server, 42, is_active="no")
    sync(settings)
    assert FLAG in lake_row(settings.lake, 17)["_dq_flags"]
    assert FLAG in lake_row(settings.lake, 42)["_dq_flags"]
    for path in Path(settings.lake, "customers").glob("**/*.parquet"):
        table = pq.read_table(path)
        table = table.filter(pc.not_equal(table["pk"], 17))
        flags = [
            [] if pk == 42 else value
            for pk, value in zip(
                table["pk"].to_pylist(), table["_dq_flags"].to_pylist(), strict=True
            )
        ]
        index = table.schema.get_field_index("_dq_flags")
        table = table.set_column(
            index, table.schema.field(index), pa.array(flags, table.schema.field(index).type)
        )
        pq.write_table(table, path)

    outcome = run_verify(settings)
    assert outcome.found["missing"] == [17], outcome.found
    assert outcome.found["stale"] == [42], outcome.found
    assert outcome.found["quarantined"] == []
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_LOOKBACK_SECONDS="0")
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-2000:]
    repaired = omnisync(env, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "2 row(s) put back from the change log" in repaired.stdout + repaired.stderr
    row = lake_row(settings.lake, 17)
    assert row["modified_date"] == before["modified_date"], "the newest version that could be"
    assert FLAG in row["_dq_flags"] and FLAG in lake_row(settings.lake, 42)["_dq_flags"]
    after = run_verify(settings)
    assert sorted(after.found["quarantined"]) == [17, 42] and after.equal


def unreadable_date(server: SandboxServer, pk: int, late_us: int = 2_000_000) -> None:
    """A new version of ``pk`` whose ``modified_date`` no client can read (no time zone); the
    server still files it under its real moment, so date filters list it."""
    store = server.state.store
    version = store.by_pk[pk].replaced({"first_name": "Undated"}, now_us() - late_us)
    version.data["modified_date"] = "2024-01-01 00:00:00"
    version.blob = bytes(orjson.dumps(version.data))
    store.put(version)


def test_a_quarantined_record_whose_date_cannot_be_read_counts_once_in_the_rolling_share(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """The rolling quarantined share counts each record in the run that first read it. A record
    whose date cannot be read cannot be told apart from the lookback's re-reads by its date, so
    it is told apart by the quarantine: read again, it is not counted again."""
    server = make_sandbox(customers=100)
    settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=3600)
    sync(settings)
    unreadable_date(server, 23)
    corrupt(server, 24, first_name="Later")  # a readable change: the watermark moves past it
    first = sync(settings)
    assert first["quarantined"] == 1 and first["quarantined_after_watermark"] == 1
    second = sync(settings)  # its lookback lists the record again
    assert second["quarantined"] == 1, "read (and quarantined) again by the lookback"
    assert second["quarantined_after_watermark"] == 0, "but counted once, by the first run"
    store = StateStore(settings.state_url.get_secret_value())
    try:
        assert recent_records(store, "customers", 10_000).quarantined == 1
    finally:
        store.dispose()
