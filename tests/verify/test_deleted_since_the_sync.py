"""A customer deleted in Omnitron after the last sync is reported deleted (exit 1) until the next
sync's deletion check removes it: Omnitron keeps no trace of when a customer was deleted, so it
cannot be told from a row the lake should not hold (docs/guarantees.md, G9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.sync.sandbox_runs import cli_env, omnisync


def test_a_deletion_after_the_sync_is_reported_until_the_next_sync(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0")
    assert omnisync(env, "sync").returncode == 0
    gone = sorted(pq.read_table(f"{tmp_path}/lake/customers")["pk"].to_pylist())[40]
    assert server.admin.post("delete", json={"pks": [gone]}).json()["pks"] == [gone]
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-2000:]
    assert f"1 deleted (pks {gone})" in found.stdout
    assert omnisync(env, "sync").returncode == 0
    after = omnisync(env, "verify")
    assert after.returncode == 0, after.stdout + after.stderr[-2000:]
