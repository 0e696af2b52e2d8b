"""G5 at the lake: a holder frozen (SIGSTOP) in the middle of a change and taken over changes
nothing when it wakes (SIGCONT), for each kind of change: a file replaced, a directory swapped
in, a file deleted, a tree deleted; on SQLite, PostgreSQL and MariaDB.

The freeze is placed by the holder's own progress (it says where it is and waits), and the
takeover waits for the lease to expire by the state database's clock: nothing here sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from omnisync.lake import LakeStorage
from omnisync.state import StateStore
from tests.lake.frozen_holder import BUCKET, rows

LEASE = 2.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue(
            "postgres_url" if request.param == "postgresql" else "mariadb_url"
        )
    StateStore(url).migrate()
    return url


def lake_files(root: Path) -> dict[str, bytes]:
    """What a reader can see: hidden names (a writer's temporary files) are skipped by every
    reader, and a holder may remove its own."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


@pytest.mark.parametrize(
    "kind", ["replace-file", "replace-directory", "delete-file", "delete-tree"]
)
def test_a_holder_frozen_mid_change_and_taken_over_changes_nothing_when_it_wakes(
    kind: str, state_url: str, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    LakeStorage(str(lake)).write_table(BUCKET, rows("before"))
    LakeStorage(str(lake)).write_table("customers/bucket=2/part.parquet", rows("before"))
    stream = f"fence-{uuid.uuid4().hex[:8]}"
    command = ["-m", "tests.lake.frozen_holder", state_url, str(lake), stream, kind, str(LEASE)]
    holder = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "paused\n", holder.stderr and holder.stderr.read()
        os.kill(holder.pid, signal.SIGSTOP)
        taker = StateStore(state_url, lease_seconds=LEASE)
        # returns once the frozen holder's lease has run out on the database's clock
        with taker.lease.locked(stream, wait_seconds=60) as fence:
            storage = LakeStorage(str(lake), guard=fence.check)
            # Not the frozen holder's file: its write would remove the holder's temporary file
            # as a stale one, which would hide a rename made without a check.
            storage.write_table("customers/bucket=1/part.parquet", rows("taker"))
            before = lake_files(lake)
            holder.stdin.write("\n")
            holder.stdin.flush()
            os.kill(holder.pid, signal.SIGCONT)
            out, err = holder.communicate(timeout=60)
            assert holder.returncode == 3, out + err
            assert "lost the lock" in out
            assert lake_files(lake) == before, "the frozen holder changed the lake"
        taker.dispose()
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
            holder.wait()
