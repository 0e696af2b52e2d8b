"""The lake: change log, snapshot and quarantine, read back by DuckDB, Polars and pandas."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.lake import ChangeLog, LakeError, LakeStorage, Snapshot, window_key, write_quarantine
from sandbox.seed import seed_customers
from transforms.customers import Lineage, to_table
from transforms.schema import CUSTOMER_SCHEMA

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def lineage(n: int = 1) -> Lineage:
    return Lineage(f"run-{n}", T0 + dt.timedelta(hours=n), "https://omnitron.test")


def customers(count: int, seed: int = 5) -> list[dict[str, Any]]:
    return [dict(c.data) for c in seed_customers(count, seed)]


def versions(rows: list[tuple[int, int]], run: int = 1) -> pa.Table:
    """Rows of (pk, minute): a customer version at T0 + minute, with a field showing which."""
    base = customers(1)[0]
    records = []
    for pk, minute in rows:
        record = dict(base, pk=pk, channel_code=f"c{pk}", first_name=f"v{minute}")
        record["modified_date"] = (
            (T0 + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
        )
        records.append(record)
    return to_table(records, lineage(run)).table


@pytest.fixture
def storage(tmp_path: Path) -> LakeStorage:
    return LakeStorage(str(tmp_path / "lake"))


def test_every_dataset_reads_back_with_real_types_in_duckdb_polars_and_pandas(
    storage: LakeStorage,
) -> None:
    source = customers(500)
    source[3]["pk"] = "broken"
    result = to_table(source, lineage())
    ChangeLog(storage).write_window(result.table, "w1")
    Snapshot(storage, buckets=8).merge(result.table)
    write_quarantine(storage, result.rejected, "w1", T0)
    root = storage.root
    for dataset, rows in (
        ("customers", 499),
        ("customer_changes", 499),
        ("quarantine/customers", 1),
    ):
        pattern = f"{root}/{dataset}/**/*.parquet"
        con = duckdb.connect()
        assert con.execute(
            f"select count(*) from read_parquet('{pattern}', hive_partitioning=true)"
        ).fetchone() == (rows,)
        assert pl.read_parquet(pattern, hive_partitioning=True).height == rows
        assert len(pd.read_parquet(f"{root}/{dataset}")) == rows
    con = duckdb.connect()
    types = dict(
        con.execute(
            f"describe select * from read_parquet('{root}/customers/**/*.parquet')"
        ).fetchall()[i][:2]
        for i in range(len(CUSTOMER_SCHEMA))
    )
    assert types["pk"] == "BIGINT" and types["modified_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["date_of_birth"] == "DATE" and types["is_active"] == "BOOLEAN"
    tier = con.execute(
        f"select count(*) from read_parquet('{root}/customers/**/*.parquet') "
        "where json_extract_string(extra_field, '$.loyalty_tier') = 'gold'"
    ).fetchone()
    assert tier is not None and tier[0] > 0
    frame = pl.read_parquet(f"{root}/customers/**/*.parquet")
    assert frame.schema["modified_date"] == pl.Datetime("us", "UTC")
    tiers = frame.select(
        pl.col("extra_field").ext.storage().str.json_path_match("$.loyalty_tier")
    ).to_series()
    assert "gold" in tiers.to_list()
    # Parquet's JSON logical type: DuckDB sees JSON, pyarrow the arrow.json extension
    assert types["extra_field"] == "JSON" and types["_extra_fields"] == "JSON"
    assert pq.read_schema(next(Path(root).glob("customers/*/*.parquet"))).field(
        "attributes"
    ).type == pa.json_(pa.string())
    pandas_frame = pd.read_parquet(f"{root}/customers")
    assert str(pandas_frame["modified_date"].dtype).startswith("datetime64[us, UTC]")
    assert pandas_frame["pk"].is_unique


def test_writing_a_window_again_replaces_it(storage: LakeStorage) -> None:
    log = ChangeLog(storage)
    first = versions([(1, 0), (2, 1), (3, 60 * 24 * 35)])  # 3 in the next month
    assert log.write_window(first, "w1") == 3
    assert log.write_window(first, "w1") == 3
    retried = versions([(1, 0), (2, 1)])
    log.write_window(retried, "w1", stale_months=log.months())
    rows = pl.read_parquet(f"{storage.root}/customer_changes/**/*.parquet")
    assert sorted(rows["pk"].to_list()) == [1, 2]


def test_versions_logged_by_an_overlapping_window_are_not_logged_twice(
    storage: LakeStorage,
) -> None:
    log = ChangeLog(storage)
    log.write_window(versions([(1, 0), (2, 5)]), "w1")
    assert log.write_window(versions([(2, 5), (3, 9), (3, 9)], run=2), "w2") == 1
    keys = pl.read_parquet(f"{storage.root}/customer_changes/**/*.parquet").select(
        "pk", "modified_date"
    )
    assert keys.height == 3 and keys.unique().height == 3


_KEY = st.tuples(st.one_of(st.none(), st.integers(-3, 3)), st.one_of(st.none(), st.integers(0, 3)))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_KEY, max_size=12), logged=st.lists(_KEY, max_size=12))
def test_the_versions_not_yet_logged_are_exactly_those_whose_keys_are_new(
    rows: list[tuple[int | None, int | None]], logged: list[tuple[int | None, int | None]]
) -> None:
    """``_new`` against the rule in plain Python: a row stays unless its (pk, modified_date)
    is among the logged ones; a row missing either stays; rows keep their order."""
    from omnisync.lake.changes import _new

    def table(keys: list[tuple[int | None, int | None]]) -> pa.Table:
        stamps = [None if m is None else T0 + dt.timedelta(minutes=m) for _, m in keys]
        return pa.table(
            {
                "pk": pa.array([pk for pk, _ in keys], pa.int64()),
                "modified_date": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                "order": pa.array(range(len(keys)), pa.int64()),
            }
        )

    known = {(pk, m) for pk, m in logged if pk is not None and m is not None}
    expected = [
        i for i, (pk, m) in enumerate(rows) if pk is None or m is None or (pk, m) not in known
    ]
    kept = table(rows).filter(_new(table(rows), table(logged)))
    assert kept.column("order").to_pylist() == expected


def test_closed_months_are_compacted_into_one_file_and_the_open_month_kept_small(
    storage: LakeStorage,
) -> None:
    """About 12 files a year of closed history: a closed month is one file; the open month is
    compacted once it holds more than 16 (one per run's window), never versions twice."""
    log = ChangeLog(storage)
    april = 60 * 24 * 35  # minutes from T0 (2026-03-01) into April
    for i in range(10):
        log.write_window(versions([(i, i), (100 + i, april + i)]), f"w{i}")
    assert len(storage.files("customer_changes")) == 20
    in_april = dt.date(2026, 4, 20)
    assert log.compact(before=in_april) == 1, "March is closed, April open with 10 files"
    files = storage.files("customer_changes")
    assert sum("modified_month=2026-03/" in f for f in files) == 1
    assert len(files) == 11
    for i in range(10, 17):
        log.write_window(versions([(100 + i, april + i)]), f"w{i}")
    assert log.compact(before=in_april) == 1, "April now holds 17 files: compacted too"
    files = storage.files("customer_changes")
    assert len(files) == 2
    assert pl.read_parquet(f"{storage.root}/customer_changes/**/*.parquet").height == 27
    assert log.compact(before=in_april) == 0


def test_months_outside_python_s_calendar_do_not_stop_compaction(storage: LakeStorage) -> None:
    """Arrow holds years 0 and 10000 (in UTC), which a lake written before the sync refused
    them may hold: compaction treats such a month as long closed, or never closed."""
    log = ChangeLog(storage)
    second = 1_000_000
    # 0000-01, 0000-03, 10000-01, and -001-12 (0000-01-01T00:00+05:00, as an older sync logged
    # it; found by a review)
    stamps = [-62_167_219_200, -62_162_035_200, 253_402_300_800, -62_167_237_200]
    for i, seconds in enumerate(stamps):
        for part in range(2):
            table = versions([(10 * i + part, 0)])
            stamp = pa.array([seconds * second], pa.int64()).cast(
                table.schema.field("modified_date").type
            )
            table = table.set_column(
                table.schema.get_field_index("modified_date"), "modified_date", stamp
            )
            log.write_window(table, f"w{i}-{part}")
    assert sorted(log.months()) == ["-001-12", "0000-01", "0000-03", "10000-01"]
    assert log.compact(before=dt.date(2026, 4, 20)) == 3, "the months before year 1 are closed"
    assert len(storage.files("customer_changes")) == 5
    assert duckdb.sql(
        f"select count(*) from read_parquet('{storage.root}/customer_changes/**/*.parquet')"
    ).fetchall() == [(8,)]


def test_an_unwritable_lake_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(LakeError, match="OMNISYNC_LAKE"):
        LakeStorage(str(blocked / "lake")).check_writable()


@pytest.mark.parametrize("command", [["sync"], ["reconcile", "--erp-file", "x.csv", "--dry-run"]])
def test_a_lake_in_a_folder_that_does_not_exist_is_refused_and_nothing_is_made(
    tmp_path: Path, command: list[str]
) -> None:
    """Found by a new user: a mistyped OMNISYNC_LAKE got a new lake in folders made for it (a
    first sync exited 0 there; a refused run left the folders behind). As for the state
    database: a new lake is made only in a folder that exists."""
    from tests.cli_runner import run_cli

    (tmp_path / "x.csv").write_text("email,erp_code\na@b.test,C1\n")
    env = {
        "OMNISYNC_LAKE": str(tmp_path / "tpyo" / "deep" / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "OMNITRON_URL": "http://127.0.0.1:9",
        "OMNITRON_TOKEN": "t",
    }
    done = run_cli(env, *command, cwd=tmp_path)
    told = done.stdout + done.stderr
    assert done.returncode == 2, told
    assert f"the folder '{tmp_path}/tpyo/deep' does not exist" in told, told
    assert "OMNISYNC_LAKE" in told and "Traceback" not in told
    assert not (tmp_path / "tpyo").exists()
    assert not (tmp_path / "state.db").exists(), "refused before the state database is made"
    assert LakeStorage(str(tmp_path / "lake")).check_writable() is None, "one level is made"


def test_a_lake_url_of_an_unknown_scheme_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """Found reading the change again: ``OMNISYNC_LAKE=s3x://...`` (a typo of s3://) ended the
    command with fsspec's traceback."""
    from tests.cli_runner import run_cli

    env = {
        "OMNISYNC_LAKE": "s3x://user:pw-in-lake@bucket/lake",
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
        "OMNITRON_URL": "http://127.0.0.1:9",
        "OMNITRON_TOKEN": "t",
    }
    done = run_cli(env, "sync", cwd=tmp_path)
    told = done.stdout + done.stderr
    assert done.returncode == 2, told
    assert "OMNISYNC_LAKE 's3x://***@bucket/lake': Protocol not known: s3x" in told, told
    assert "Traceback" not in told and "pw-in-lake" not in told


def test_a_lake_under_a_folder_that_cannot_be_entered_is_not_called_a_typo(tmp_path: Path) -> None:
    """From a review: a folder above the lake that cannot be looked into (its permissions, or a
    file where a folder should be) is not "does not exist (a typo?)": the write says why."""
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(LakeError) as raised:
        LakeStorage(str(blocked / "a" / "lake")).check_writable()
    assert "not writable" in str(raised.value) and "typo" not in str(raised.value)


class Crash(Exception):
    pass


batch = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 30)), min_size=1, max_size=25)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.tuples(batch, st.one_of(st.none(), st.integers(0, 3))), min_size=1, max_size=6
    )
)
def test_the_snapshot_equals_the_latest_version_per_pk_whatever_the_order_and_crashes(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[tuple[list[tuple[int, int]], int | None]],
) -> None:
    snapshot = Snapshot(LakeStorage(str(tmp_path_factory.mktemp("lake"))), buckets=4)
    seen: list[tuple[int, int]] = []
    for rows, crash_after in batches:
        table = versions(rows)
        if crash_after is not None:
            written = 0

            def crash(_: int, limit: int = crash_after) -> None:
                nonlocal written
                written += 1
                if written > limit:
                    raise Crash

            with contextlib.suppress(Crash):
                snapshot.merge(table, after_bucket=crash)
        snapshot.merge(table)  # the run after the crash (or a retry) merges the batch again
        seen.extend(rows)
    expected = {}
    for pk, minute in seen:
        expected[pk] = max(minute, expected.get(pk, -1))
    got = snapshot.read(["pk", "first_name"]).to_pylist()
    assert len(got) == len({r["pk"] for r in got}), "one row per pk"
    assert {r["pk"]: int(r["first_name"][1:]) for r in got} == expected


def test_a_reader_during_merges_sees_every_pk_exactly_once(storage: LakeStorage) -> None:
    snapshot = Snapshot(storage, buckets=8)
    snapshot.merge(versions([(pk, 0) for pk in range(1, 401)]))
    stop = threading.Event()
    problems: list[str] = []

    def read_loop() -> None:
        while not stop.is_set():
            pks = snapshot.read(["pk"]).column("pk").to_pylist()
            if sorted(pks) != list(range(1, 401)):
                problems.append(f"saw {len(pks)} rows, {len(set(pks))} distinct")

    reader = threading.Thread(target=read_loop)
    reader.start()
    for minute in range(1, 15):
        snapshot.merge(versions([(pk, minute) for pk in range(1, 401, 3)], run=minute))
    stop.set()
    reader.join()
    assert problems == []


def test_reading_a_column_a_file_does_not_have_names_the_file_and_the_column(
    storage: LakeStorage,
) -> None:
    storage.write_table("a/f.parquet", pa.table({"pk": [1]}))
    with pytest.raises(LakeError, match=r"a/f.parquet has no column\(s\) \['missing'\]"):
        storage.read_table("a/f.parquet", columns=["pk", "missing"])


def test_window_keys_are_deterministic_file_names() -> None:
    upper = dt.datetime(2026, 3, 1, 12, 0, 0, 250, tzinfo=dt.UTC)
    key = window_key(T0, upper)
    assert key == window_key(T0, upper) == "20260301T000000000000Z--20260301T120000000250Z"
    assert window_key(None, upper).startswith("start--")


def test_parallel_merges_into_the_same_buckets_lose_nothing(storage: LakeStorage) -> None:
    snapshot = Snapshot(storage, buckets=2)
    batches = [
        versions([(pk, minute) for pk in range(minute * 50, minute * 50 + 50)], run=minute)
        for minute in range(1, 9)
    ]
    threads = [threading.Thread(target=snapshot.merge, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(snapshot.read(["pk"]).column("pk").to_pylist()) == list(range(50, 450))


def test_reopening_the_lake_with_another_bucket_count_is_refused(storage: LakeStorage) -> None:
    snapshot = Snapshot(storage, buckets=8)
    snapshot.ensure_current()
    snapshot.merge(versions([(1, 0), (2, 0)]))
    Snapshot(storage, buckets=8)  # same layout: fine
    with pytest.raises(LakeError, match="OMNISYNC_SNAPSHOT_BUCKETS is 16"):
        Snapshot(storage, buckets=16)
    assert pl.read_parquet(f"{storage.root}/customers/**/*.parquet").height == 2


def test_a_retried_window_replaces_its_quarantine_file(storage: LakeStorage) -> None:
    source = customers(5)
    source[1]["pk"] = "x"
    source[2]["pk"] = "y"
    twice = to_table(source, lineage()).rejected
    once = to_table([source[1], *source[3:]], lineage()).rejected
    assert write_quarantine(storage, twice, "w1", T0) == 2
    assert write_quarantine(storage, once, "w1", T0) == 1
    assert pl.read_parquet(f"{storage.root}/quarantine/customers/**/*.parquet").height == 1
    write_quarantine(storage, once.slice(0, 0), "w1", T0)
    # The retry rejected nothing: the dataset keeps one empty file, so that it still exists.
    (left,) = storage.files("quarantine/customers")
    assert pl.read_parquet(storage.path(left)).height == 0
    write_quarantine(storage, once, "w2", T0)
    write_quarantine(storage, once.slice(0, 0), "w3", T0)
    assert len(storage.files("quarantine/customers")) == 2, "no empty file beside real ones"


def test_a_temp_file_left_by_a_killed_writer_is_never_read_and_is_cleaned_up(
    storage: LakeStorage,
) -> None:
    from omnisync.lake.renames import temporary_path

    snapshot = Snapshot(storage, buckets=1)
    snapshot.merge(versions([(1, 0), (2, 0)]))
    target = storage.path("customers/bucket=0/part.parquet")
    leftover = temporary_path(target, "killed")
    storage.fs.copy(target, leftover)  # what a kill between write and rename leaves
    other = temporary_path(storage.path("customers/bucket=0/other.parquet"), "writing")
    storage.fs.copy(target, other)  # another file's, in the same folder: not this write's
    assert pd.read_parquet(f"{storage.root}/customers")["pk"].tolist() == [1, 2]
    assert pa.dataset.dataset(f"{storage.root}/customers").count_rows() == 2
    snapshot.merge(versions([(3, 0)]))
    assert not storage.fs.exists(leftover)
    assert storage.fs.exists(other)


def test_a_guarded_lake_changes_nothing_once_the_guard_refuses(storage: LakeStorage) -> None:
    """A run that lost its lock sets no file: every change to the lake asks the guard first."""
    storage.write_table("customers/bucket=0/part.parquet", versions([(1, 0)]))

    def lost() -> None:
        raise LakeError("lock lost")

    storage = storage.guarded(lost)
    before = sorted(p.name for p in Path(storage.root).rglob("*"))
    for change in (
        lambda: storage.write_table("customers/bucket=0/part.parquet", versions([(2, 0)])),
        lambda: storage.write_json("_meta/x.json", {}),
        lambda: storage.delete("customers/bucket=0/part.parquet"),
        lambda: storage.delete_tree("customers"),
        lambda: storage.swap_directories("customers", "elsewhere"),
    ):
        with pytest.raises(LakeError, match="lock lost"):
            change()
    assert sorted(p.name for p in Path(storage.root).rglob("*")) == before


def test_change_log_files_say_which_month_modified_month_is(storage: LakeStorage) -> None:
    ChangeLog(storage).write_window(versions([(1, 0), (2, 60 * 24 * 40)]), "w1")
    for path in storage.files("customer_changes"):
        metadata = pq.read_schema(storage.path(path)).metadata
        assert metadata[b"omnisync.modified_month"] == b"YYYY-MM of modified_date in UTC"


def test_removing_a_pk_takes_it_out_of_every_file_a_reader_sees(storage: LakeStorage) -> None:
    """A row a tool put in another bucket's file (or a file of its own) is read all the same: a
    deletion's apply removes it there too, and ``pks()`` names each pk once, from the files
    readers open only."""
    snapshot = Snapshot(storage, buckets=4)
    snapshot.merge(versions([(1, 1), (2, 1), (3, 1)]))
    stray = versions([(2, 2), (5, 1)])
    storage.write_table("customers/bucket=3/extra.parquet", stray)
    storage.write_table("customers/_hidden/part.parquet", versions([(9, 1)]))
    assert snapshot.pks().tolist() == [1, 2, 3, 5]
    assert snapshot.remove([2, 5]) == 3
    assert snapshot.pks().tolist() == [1, 3]
    seen = duckdb.execute(
        f"select distinct pk from read_parquet('{storage.root}/customers/bucket=*/*.parquet') "
        "order by pk"
    ).fetchall()
    assert seen == [(1,), (3,)]
    assert snapshot.remove([2, 5]) == 0, "removing again changes nothing"


def test_a_merged_bucket_reports_the_bytes_it_wrote(storage: LakeStorage) -> None:
    """What the merge counts toward its next heap trim (omnisync/sync/finish.py): the bucket
    written, old rows and new, not only the staged rows."""
    snapshot = Snapshot(storage, buckets=1)
    first = snapshot.merge_bucket(0, versions([(1, 0), (2, 0)]))
    written = pq.read_table(storage.path("customers/bucket=0/part.parquet")).nbytes
    assert 0.9 * written <= first <= 1.1 * written  # the rows in memory, as read back
    more = snapshot.merge_bucket(0, versions([(3, 0)]))
    assert more > first, "the bucket's old rows count too"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    moments=st.lists(
        st.tuples(
            st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2099, 12, 31)),
            st.integers(-14 * 60, 14 * 60),  # the offset it was sent with, in minutes
        ),
        min_size=1,
        max_size=20,
    )
)
def test_each_version_is_logged_in_the_folder_of_its_month_in_utc(
    tmp_path_factory: pytest.TempPathFactory, moments: list[tuple[dt.datetime, int]]
) -> None:
    """docs/lake.md: ``modified_month`` is the month of ``modified_date`` in UTC, also for a
    moment sent with an offset that puts it in another month locally."""
    base = customers(1)[0]
    records = []
    for pk, (moment, minutes) in enumerate(moments, start=1):
        sent = moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
        records.append(dict(base, pk=pk, modified_date=sent.isoformat()))
    storage = LakeStorage(str(tmp_path_factory.mktemp("lake")))
    ChangeLog(storage).write_window(to_table(records, lineage()).table, "w1")
    found = {}
    for path in storage.files("customer_changes"):
        month = path.split("modified_month=")[1].split("/")[0]
        for pk in storage.read_table(path, ["pk"]).column("pk").to_pylist():
            found[pk] = month
    expected = {}
    for pk, (moment, minutes) in enumerate(moments, start=1):
        utc = moment - dt.timedelta(minutes=minutes)
        expected[pk] = f"{utc.year:04d}-{utc.month:02d}"
    assert found == expected


def test_a_damaged_file_s_reason_is_cut_after_its_secret_is_hidden() -> None:
    """The reason shown is cut to 300 characters: cut before the lake URL's ``user:pass`` was
    replaced, a URL split by the cut matched neither replacement and part of the password was
    shown."""
    from omnisync.lake.errors import LakeDamaged

    url = "memory://omni:s3cretpassw0rd@bucket/lake"
    lake = LakeStorage(url)
    message = "x" * (300 - len("ArrowInvalid: ") - 20) + f" in {url}/customers/part.parquet"
    with pytest.raises(LakeDamaged) as damaged, lake.reading("customers/part.parquet"):
        raise pa.ArrowInvalid(message)
    shown = str(damaged.value)
    assert "s3cret" not in shown and "omni:" not in shown, shown


def test_a_missing_column_is_refused_without_the_lake_url_s_secret() -> None:
    """A file without a column its reader names is refused naming the file: by the lake's URL
    as shown to people, never with its ``user:pass``."""
    url = "memory://omni:s3cretpassw0rd@bucket/lake"
    lake = LakeStorage(url)
    lake.write_table("customers/bucket=0/part.parquet", pa.table({"pk": [1]}))
    with pytest.raises(LakeError) as refused:
        lake.read_table("customers/bucket=0/part.parquet", columns=["pk", "email"])
    shown = str(refused.value)
    assert "email" in shown and "customers/bucket=0/part.parquet" in shown, shown
    assert "s3cret" not in shown and "omni:" not in shown, shown


def test_a_missing_file_is_named_without_the_lake_url_s_secret() -> None:
    """A file gone when it is read (another reader's listing, a lost lock) raises the file
    system's own error, which names its path: with the lake's ``user:pass`` hidden."""
    lake = LakeStorage("memory://omni:s3cretpassw0rd@bucket/lake")
    for read in (
        lambda: lake.read_table("customers/bucket=0/gone.parquet"),
        lambda: lake.open("customers/bucket=0/gone.parquet"),
    ):
        with pytest.raises(FileNotFoundError) as missing:
            read()
        shown = str(missing.value)
        assert "gone.parquet" in shown and "s3cret" not in shown and "omni:" not in shown, shown


@pytest.mark.parametrize(
    "error",
    [
        lambda url: PermissionError(13, f"denied: {url}/customers/x.parquet"),
        lambda url: OSError(5, "Input/output error", f"{url}/customers/x.parquet"),
        lambda url: _OwnSignature(f"{url}/customers/x.parquet", code=7),
        lambda url: _ReadOnlyStrerror(f"{url}/customers/x.parquet"),
        lambda url: _noted(FileNotFoundError(2, "No such file", "customers/x.parquet"), url),
    ],
    ids=["errno-and-message", "errno-and-filename", "own-constructor", "read-only", "noted"],
)
def test_an_error_opening_a_file_keeps_its_class_and_errno_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, error: Any
) -> None:
    """Whatever class the file system raises on opening (its constructor may take other
    arguments than OSError's) and wherever it puts the path (message, filename), the caller gets
    that same error, once, with the lake URL's ``user:pass`` hidden."""
    url = "memory://omni:s3cretpassw0rd@bucket/lake"
    lake = LakeStorage(url)
    raised = error(url)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(lake.fs, "open", failing)
    with pytest.raises(type(raised)) as caught:
        lake.open("customers/x.parquet")
    assert caught.value.errno == raised.errno
    shown = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert "x.parquet" in str(caught.value), shown
    shown += " ".join(getattr(caught.value, "__notes__", []))
    assert "s3cret" not in shown and "omni:" not in shown, shown
    assert str(caught.value).count("[Errno") <= 1, shown


class _OwnSignature(OSError):
    """An OSError whose constructor is not OSError's (as some file systems' are)."""

    def __init__(self, path: str, *, code: int) -> None:
        super().__init__(f"cannot open {path}")
        self.code = code


class _ReadOnlyStrerror(OSError):
    """An OSError whose ``strerror`` cannot be set."""

    @property  # type: ignore[override]
    def strerror(self) -> str:
        return "denied"


def _noted(error: OSError, url: str) -> OSError:
    error.add_note(f"while opening {url}/customers/x.parquet")
    return error
