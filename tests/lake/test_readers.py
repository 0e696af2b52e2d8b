"""What an analyst does first with each documented dataset, after a clean first sync, in DuckDB,
Polars and pandas: read it, filter it, cast a JSON column to text, write CSV. The recipes are
the ones ``docs/lake.md`` gives."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from omnisync.lake.snapshot import DEFAULT_BUCKETS
from omnisync.orchestration import Local
from omnisync.sync.run import run_sync
from sandbox import SandboxServer
from tests.sync.sandbox_runs import settings_for, wait_for_server_clock
from transforms.schema import FEW_SHORT_VALUES, MOSTLY_DISTINCT

# dataset: (a JSON column, a column to filter on)
DATASETS = {
    "customers": ("extra_field", "pk"),
    "customer_changes": ("attributes", "pk"),
    "quarantine/customers": ("raw", "_run_id"),
}
#: the documented Polars one-liner: JSON columns (an Arrow extension type) as plain text
POLARS_JSON = ("extra_field", "attributes", "attributes_kwargs", "localized_attributes")


@pytest.fixture(scope="module")
def first_sync(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readers")
    with SandboxServer(customers=300, seed=7) as server:
        # the documented layout: 64 buckets, whose folder names do not sort as numbers
        settings = settings_for(server, root, lag_seconds=0, snapshot_buckets=DEFAULT_BUCKETS)
        outcome = run_sync(settings, False, Local())
    assert isinstance(outcome, dict) and outcome["quarantined"] == 0, "a healthy lake"
    return root / "lake"


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    # docs/lake.md: Polars reads Parquet's JSON type as ext[arrow.json]; .ext.storage() is its text
    json = [n for n, t in frame.schema.items() if isinstance(t, pl.datatypes.Extension)]
    return frame.with_columns(pl.col(json).ext.storage())


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_documented_dataset_reads_filters_casts_and_writes_csv_in_duckdb(
    first_sync: Path, dataset: str, tmp_path: Path
) -> None:
    json_column, key = DATASETS[dataset]
    source = f"read_parquet('{first_sync}/{dataset}/**/*.parquet', hive_partitioning=true)"
    db = duckdb.connect()
    rows = db.execute(f"select count(*) from {source} where {key} is not null").fetchone()
    assert rows is not None
    text = db.execute(f"select cast({json_column} as varchar) from {source} limit 1").fetchall()
    assert all(isinstance(t, str) for (t,) in text)
    db.execute(f"copy (select * from {source}) to '{tmp_path}/out.csv' (header)")
    assert (
        (tmp_path / "out.csv")
        .read_text()
        .startswith(pq.read_schema(next((first_sync / dataset).rglob("*.parquet"))).names[0])
    )


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_documented_dataset_reads_filters_casts_and_writes_csv_in_polars(
    first_sync: Path, dataset: str, tmp_path: Path
) -> None:
    json_column, key = DATASETS[dataset]
    frame = _as_text(
        pl.read_parquet(f"{first_sync}/{dataset}/**/*.parquet", hive_partitioning=True)
    )
    assert frame.schema[json_column] == pl.String
    frame.filter(pl.col(key).is_not_null()).select(pl.col(json_column).cast(pl.String))
    lists = [n for n, t in frame.schema.items() if t == pl.List(pl.String)]
    frame.with_columns(pl.col(lists).list.join(";")).write_csv(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_documented_dataset_reads_filters_casts_and_writes_csv_in_pandas(
    first_sync: Path, dataset: str, tmp_path: Path
) -> None:
    json_column, key = DATASETS[dataset]
    frame = pd.read_parquet(first_sync / dataset)
    kept = frame[frame[key].notna()]
    assert kept[json_column].astype("string").dtype == "string"
    frame.to_csv(tmp_path / "out.csv", index=False)
    assert (tmp_path / "out.csv").exists()


def test_the_quarantine_exists_with_its_schema_on_a_healthy_lake(first_sync: Path) -> None:
    for read in (
        lambda: pd.read_parquet(first_sync / "quarantine/customers"),
        lambda: pl.read_parquet(f"{first_sync}/quarantine/customers/**/*.parquet"),
        lambda: duckdb.sql(
            f"select * from read_parquet('{first_sync}/quarantine/customers/**/*.parquet')"
        ).df(),
    ):
        frame = read()
        assert len(frame) == 0 and {"pk", "reasons", "raw", "_run_id"} <= set(frame.columns)


def columns_and_rows(folder: Path) -> dict[str, tuple[list[str], int]]:
    """A dataset's columns and row count as each reader gives them, per docs/lake.md's recipes."""
    glob = f"{folder}/**/*.parquet"
    frame = pd.read_parquet(folder)
    polars = pl.scan_parquet(glob, hive_partitioning=True).collect()
    by_duckdb = duckdb.sql(f"select * from read_parquet('{glob}', hive_partitioning=true)")
    return {
        "pandas": (list(frame.columns), len(frame)),
        "polars": (polars.columns, polars.height),
        "duckdb": (by_duckdb.columns, len(by_duckdb.fetchall())),
    }


@pytest.mark.parametrize("table", ["plan", "conflicts", "unknown_in_erp", "erp_rows", "outcomes"])
def test_each_reconciliation_dataset_exists_with_its_schema_before_any_reconciliation(
    first_sync: Path, table: str
) -> None:
    """docs/lake.md's readers of ``reconciliation/<table>/`` work on a lake that only synced:
    zero rows, the table's columns and a ``run`` column, in pandas, Polars and DuckDB."""
    from omnisync.lake.reconciliation import TABLES

    folder = first_sync / "reconciliation" / table
    for reader, shown in columns_and_rows(folder).items():
        assert shown == ([*TABLES[table].names, "run"], 0), reader
    (empty,) = folder.rglob("*.parquet")
    assert pq.read_schema(empty).remove_metadata() == TABLES[table], "the schema a run writes"


def test_bucket_reads_as_the_documented_integer_in_every_reader(first_sync: Path) -> None:
    """docs/lake.md: an integer in DuckDB, Polars and pyarrow; pandas gives a categorical of
    those integers (categories in the folders' text order), ``.astype("int64")`` the number."""
    expected = sorted(pq.read_table(first_sync / "customers").column("bucket").to_pylist())
    assert expected == sorted(
        p % DEFAULT_BUCKETS
        for p in pq.read_table(first_sync / "customers", columns=["pk"]).column("pk").to_pylist()
    )
    shown = duckdb.sql(
        f"select bucket from read_parquet('{first_sync}/customers/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert sorted(b for (b,) in shown) == expected
    polars = pl.read_parquet(f"{first_sync}/customers/**/*.parquet", hive_partitioning=True)
    assert polars.schema["bucket"].is_integer()
    assert sorted(polars["bucket"].to_list()) == expected
    frame = pd.read_parquet(first_sync / "customers")
    assert str(frame["bucket"].dtype) == "category"
    assert sorted(frame["bucket"].astype("int64").tolist()) == expected


@pytest.mark.parametrize("dataset", ["customers", "customer_changes"])
def test_each_column_is_stored_with_the_encoding_and_compression_its_values_need(
    first_sync: Path, dataset: str
) -> None:
    """docs/performance.md: identifiers, contacts and moments are written without a dictionary
    (for nearly distinct values it costs a quarter of the write and adds bytes), names, flags and
    lineage with one; flags, codes and lineage uncompressed (a few bytes a page), the rest with
    zstd. Every reader above reads them all."""
    files = sorted((first_sync / dataset).rglob("*.parquet"))
    assert files
    for path in files:
        file = pq.ParquetFile(path)
        if not file.metadata.num_rows:
            continue  # an empty dataset's placeholder file has no pages to encode
        meta = file.metadata.row_group(0)
        chunks = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
        for plain in MOSTLY_DISTINCT & set(chunks):
            assert "RLE_DICTIONARY" not in chunks[plain].encodings, (path, plain)
        for kept in ("first_name", "channel", "_run_id", "_source", "_dq_flags.list.element"):
            assert "RLE_DICTIONARY" in chunks[kept].encodings, (path, kept)
        for name, chunk in chunks.items():
            short = name.split(".")[0] in FEW_SHORT_VALUES
            assert chunk.compression == ("UNCOMPRESSED" if short else "ZSTD"), (path, name)


def test_a_first_sync_that_read_nothing_leaves_every_dataset_readable(tmp_path: Path) -> None:
    with SandboxServer(customers=0, seed=7) as server:
        settings = settings_for(
            server,
            tmp_path,
            lag_seconds=0,
            pii_policy={"phone_number": "drop"},
        )
        outcome = run_sync(settings, False, Local())
        assert isinstance(outcome, dict) and outcome["read"] == 0
        lake = tmp_path / "lake"
        for dataset in DATASETS:
            for frame in (
                pd.read_parquet(lake / dataset),
                pl.read_parquet(f"{lake}/{dataset}/**/*.parquet", hive_partitioning=True),
                duckdb.sql(
                    f"select * from read_parquet('{lake}/{dataset}/**/*.parquet', "
                    "hive_partitioning=true)"
                ).df(),
            ):
                assert len(frame) == 0 and "_run_id" in frame.columns, dataset
        customers = pd.read_parquet(lake / "customers")
        # a dropped column stays, all null: queries naming it run
        assert "email" in customers.columns and "phone_number" in customers.columns
        # Customers arrive: the empty files add nothing, and hide nothing.
        server.admin.post("create", json={"count": 40}).raise_for_status()
        wait_for_server_clock(server, 0)
        again = run_sync(settings, False, Local())
        assert isinstance(again, dict) and again["read"] == 40
        pks = pq.read_table(lake / "customers", columns=["pk"]).column("pk").to_pylist()
        assert len(pks) == len(set(pks)) == 40
        phones = duckdb.sql(
            f"select count(phone_number) from read_parquet('{lake}/customer_changes/**/*.parquet')"
        ).fetchall()
        assert phones == [(0,)]


def test_run_id_names_the_logging_run_in_the_change_log_and_the_last_reader_in_customers(
    tmp_path: Path,
) -> None:
    """docs/lake.md: a run re-reads its lookback, so in customers/ ``_run_id`` is the last run
    that read the row; the run that logged the version is its row in customer_changes/."""
    import datetime as dt

    from tests.sync.sandbox_runs import set_modified

    with SandboxServer(customers=30, seed=7) as server:
        settings = settings_for(server, tmp_path, lag_seconds=0, lookback_seconds=300)
        set_modified(server, 5, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5), first_name="X")
        wait_for_server_clock(server, 0)
        first = run_sync(settings, False, Local())
        second = run_sync(settings, False, Local())
    assert isinstance(first, dict) and isinstance(second, dict)
    assert second["read"] >= 1, "the second run re-read its lookback"
    lake = tmp_path / "lake"
    snapshot = pq.read_table(lake / "customers", filters=[("pk", "=", 5)]).to_pylist()
    logged = pq.read_table(lake / "customer_changes", filters=[("pk", "=", 5)]).to_pylist()
    assert [r["_run_id"] for r in snapshot] == [second["run_id"]]
    assert [r["_run_id"] for r in logged] == [first["run_id"]]
    assert snapshot[0]["modified_date"] == logged[0]["modified_date"]
