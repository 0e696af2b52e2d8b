"""A file of ``customers/`` damaged behind the product's back: a sync stops in one line that
names it and what to run, ``verify --full`` finds it even when only a column a sync reads is
damaged, and ``verify --full --repair`` mends it from Omnitron."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sandbox import SandboxServer
from tests.sync.sandbox_runs import assert_lake_matches_truth, cli_env, omnisync, sync_ok

Make = Callable[..., SandboxServer]


def damage_inside(path: Path) -> None:
    """Overwrite the ``email`` column's data: the footer, ``pk`` and ``modified_date`` still
    read, so a reader of those two columns alone sees nothing wrong."""
    chunk = pq.ParquetFile(path).metadata.row_group(0)
    names = [chunk.column(i).path_in_schema for i in range(chunk.num_columns)]
    email = chunk.column(names.index("email"))
    start = email.dictionary_page_offset or email.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + email.total_compressed_size] = b"\xff" * email.total_compressed_size
    path.write_bytes(bytes(data))
    kept = pq.ParquetFile(path).read(columns=["pk", "modified_date"])
    assert kept.num_rows == chunk.num_rows, "pk and modified_date must stay readable"


def break_footer(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-12])


@pytest.mark.parametrize("damage", [damage_inside, break_footer], ids=["inside", "footer"])
def test_a_damaged_file_stops_a_sync_in_one_line_and_verify_full_repair_mends_it(
    make_sandbox: Make, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    server = make_sandbox(customers=600, seed=5)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0")
    lake = tmp_path / "lake"
    sync_ok(env)
    for path in (lake / "customers").rglob("*.parquet"):
        damage(path)
    server.admin.post("modify", json={"count": 60})
    stopped = omnisync(env, "sync")
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 2, said
    assert "Traceback" not in said, said
    assert "cannot be read" in said and "omnisync verify --full --repair" in said, said
    assert "customers/bucket=" in said, "the message names the file"
    found = omnisync(env, "verify", "--full")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "unreadable" in found.stdout, found.stdout
    mended = omnisync(env, "verify", "--full", "--repair")
    assert mended.returncode == 0, mended.stdout + mended.stderr[-2000:]
    sync_ok(env)
    assert_lake_matches_truth(server, str(lake))
