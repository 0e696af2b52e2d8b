"""G6: nested JSON reaches the lake exactly as Omnitron sent it, and fields a newer Omnitron adds
are kept and reported: in the command's summary, the Prefect artifact and ``omnisync status``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from sandbox import SandboxServer
from tests.sync.sandbox_runs import cli_env, omnisync, set_modified, sync_ok, wait_for_server_clock

Make = Callable[..., SandboxServer]
EXACT = '{"price":12.10,"ratio":1e2,"big":123456789012345678901234567890,"nested":{"a":[0.10]}}'


def test_nested_values_are_kept_as_sent_and_new_fields_are_reported(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300, added_fields={"loyalty_points": 7, "segment": "vip"})
    exotic = {
        "price": orjson.Fragment(b"12.10"),
        "ratio": orjson.Fragment(b"1e2"),
        "big": orjson.Fragment(b"123456789012345678901234567890"),
        "nested": {"a": [orjson.Fragment(b"0.10")]},
    }
    set_modified(server, 10, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5), extra_field=exotic)
    env = cli_env(server, tmp_path, prefect_api, via_prefect=True, OMNISYNC_LAG_SECONDS="0")
    wait_for_server_clock(server, 0)
    done = sync_ok(env)
    summary = " ".join(done.stderr.split())
    assert "loyalty_points (300 records)" in summary and "segment (300 records)" in summary
    lake = pq.read_table(tmp_path / "lake" / "customers").to_pylist()
    by_pk = {row["pk"]: row for row in lake}
    assert by_pk[10]["extra_field"] == EXACT
    assert {row["_extra_fields"] for row in lake} == {'{"loyalty_points":7,"segment":"vip"}'}
    status = omnisync({**env, "COLUMNS": "250"}, "status")
    assert "loyalty_points (300)" in " ".join(status.stdout.split())
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(  # the newest: the server answers 200 at most
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sync-customers"])),
            sort=ArtifactSort.CREATED_DESC,
        )
    assert any("`loyalty_points`: 300 record(s)" in str(a.data) for a in artifacts)
