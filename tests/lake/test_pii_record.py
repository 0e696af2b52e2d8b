"""The PII policy a lake was written with is part of its record (``_meta/lake.json``): a run with
another policy would mix clear and hashed values, or files with and without a column, in one
dataset. It is refused in one line until a full refresh rebuilds the lake with the new policy;
a dropped column stays in every dataset, all null, so readers' queries that name it still run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from omnisync.lake import LakeStorage, Snapshot
from omnisync.lake.record import FORMAT, RECORD, PolicyChanged
from sandbox import SandboxServer
from tests.sync.sandbox_runs import (
    TEST_BUCKETS,
    cli_env,
    omnisync,
    sync_ok,
    wait_for_server_clock,
)
from tests.sync.test_bad_input import corrupt

Make = Callable[..., SandboxServer]
REBUILD = "rebuild it with `omnisync sync --full-refresh`"
HASHED = re.compile(r"^[0-9a-f]{64}$")
DATASETS = ("customers", "customer_changes")


def _lake_files(lake: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(lake)): p.read_bytes()
        for p in lake.rglob("*")
        if p.is_file() and "_reports" not in p.parts
    }


def _read(lake: Path, dataset: str) -> list[dict[str, object]]:
    """``email`` and ``phone_number`` of every row of ``dataset``, read by DuckDB and by Polars
    through the glob analysts use (the two must agree)."""
    glob = f"{lake}/{dataset}/**/*.parquet"
    by_duckdb = duckdb.sql(
        f"select pk, email, phone_number from read_parquet('{glob}', hive_partitioning = true) "
        "order by all"
    ).fetchall()
    by_polars = (
        pl.scan_parquet(glob, hive_partitioning=True)
        .select("pk", "email", "phone_number")
        .sort("pk", "email", "phone_number", nulls_last=True)
        .collect()
    )
    rows = [{"pk": pk, "email": e, "phone_number": p} for pk, e, p in by_duckdb]
    assert sorted(by_polars.to_dicts(), key=repr) == sorted(rows, key=repr)
    return rows


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        ({"email": "hash"}, "email (written keep, now hash)"),
        ({"phone_number": "drop"}, "phone_number (written keep, now drop)"),
    ],
    ids=["hash", "drop"],
)
def test_a_changed_pii_policy_is_refused_and_a_full_refresh_rebuilds_the_lake_with_it(
    make_sandbox: Make, tmp_path: Path, policy: dict[str, str], said: str
) -> None:
    server = make_sandbox(customers=120, seed=59)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_PII_SALT="pepper-59")
    lake = tmp_path / "lake"
    sync_ok(env)
    assert json.loads((lake / RECORD).read_text()) == {
        "format": FORMAT,
        "buckets": TEST_BUCKETS,
        "pii": {},
    }
    changed = {**env, "OMNISYNC_PII_POLICY": json.dumps(policy)}
    corrupt(server, 7, first_name="Changed")
    wait_for_server_clock(server, 0)
    before = _lake_files(lake)

    done = omnisync(changed, "sync")
    assert done.returncode == 2, done.stdout + done.stderr
    line = (done.stdout + done.stderr).strip()
    assert "Traceback" not in line and line.count("\n") == 0, line
    assert said in line and "OMNISYNC_PII_POLICY" in line and line.endswith(REBUILD), line
    assert _lake_files(lake) == before, "a refused run changes nothing in the lake"

    sync_ok(changed, "--full-refresh")
    record = json.loads((lake / RECORD).read_text())
    assert record == {"format": FORMAT, "buckets": TEST_BUCKETS, "pii": policy}
    corrupt(server, 8, first_name="Later")
    wait_for_server_clock(server, 0)
    sync_ok(changed)  # the new policy is the lake's now
    for dataset in DATASETS:
        rows = _read(lake, dataset)
        assert len({r["pk"] for r in rows}) == 120, dataset
        if "email" in policy:
            assert all(HASHED.match(str(r["email"])) for r in rows), dataset
        else:
            assert all(r["phone_number"] is None for r in rows), dataset
            assert any(r["email"] for r in rows), dataset

    done = omnisync(env, "sync")  # and the old policy is refused in turn
    assert done.returncode == 2 and "(written" in done.stderr + done.stdout


def test_a_lake_that_records_no_pii_policy_is_refused_until_a_full_refresh(
    tmp_path: Path,
) -> None:
    """Every lake omnisync writes records its policy; one that records none was not written by
    this omnisync, and whether its files hold values in clear cannot be told."""
    storage = LakeStorage(str(tmp_path))
    storage.write_json(RECORD, {"format": FORMAT, "buckets": 4})
    snapshot = Snapshot(storage, buckets=4, pii_policy={"email": "hash"})
    with pytest.raises(PolicyChanged, match=r"records no PII policy.*full-refresh"):
        snapshot.ensure_current()
    assert storage.read_json(RECORD) == {"format": FORMAT, "buckets": 4}, "nothing written"
    snapshot.ensure_current(rebuild=True)
    assert storage.read_json(RECORD) == {"format": FORMAT, "buckets": 4, "pii": {"email": "hash"}}
