"""A file of the lake damaged behind the product's back: a sync stops in one line that names it
and what to run, ``verify --full`` finds it even when only a column a sync reads is damaged,
and ``verify --full --repair`` mends it from Omnitron, touching no other file. A full refresh
never drops what a damaged file held, and an error that says nothing of a file's bytes (a
permission, a timeout) is never called damage: a repair would remove healthy customers."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omnisync.lake.errors import damage_in
from sandbox import SandboxServer
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    omnisync,
    sync_ok,
    wait_for_server_clock,
)
from tests.verify.test_acceptance import environment, malformed

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


def damage_that_decodes(path: Path) -> None:
    """Change one byte of the ``created_date`` column's data such that the file still decodes
    (into another date): only the page's checksum can tell. A byte whose change breaks the
    decoding is put back and the next one tried."""
    chunk = pq.ParquetFile(path).metadata.row_group(0)
    names = [chunk.column(i).path_in_schema for i in range(chunk.num_columns)]
    column = chunk.column(names.index("created_date"))
    start = column.dictionary_page_offset or column.data_page_offset
    original = pq.ParquetFile(path).read(columns=["created_date"])
    data = bytearray(path.read_bytes())
    for offset in range(start + column.total_compressed_size - 1, start, -1):
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
        try:
            read = pq.ParquetFile(path, page_checksum_verification=False).read(
                columns=["created_date"]
            )
        except Exception:  # it broke the decoding: not the damage wanted here
            read = None
        if read is not None and not read.equals(original):
            return
        data[offset] ^= 0x01
    raise AssertionError("no byte of created_date changes a value and still decodes")


def break_footer(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-12])


def holding(lake: Path, pk: int) -> Path:
    """The file of ``customers/`` that holds ``pk``."""
    for path in sorted((lake / "customers").rglob("*.parquet")):
        if pk in pq.read_table(path, columns=["pk"]).column("pk").to_pylist():
            return path
    raise AssertionError(f"no file holds {pk}")


def untouched(lake: Path, but: Path) -> dict[Path, list[tuple[int, object]]]:
    """The customers (pk and version) of every file but ``but``: a repair may rewrite a file
    with what it re-read, never take a customer out of a healthy one."""
    return {
        path: sorted(
            zip(
                *pq.read_table(path, columns=["pk", "modified_date"]).to_pydict().values(),
                strict=True,
            )
        )
        for path in (lake / "customers").rglob("*.parquet")
        if path != but
    }


@pytest.mark.parametrize(
    "damage",
    [damage_inside, damage_that_decodes, break_footer],
    ids=["inside", "still-decodes", "footer"],
)
def test_a_damaged_file_stops_a_sync_in_one_line_and_verify_full_repair_mends_only_it(
    make_sandbox: Make, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    server = make_sandbox(customers=600, seed=5)
    env = environment(server, tmp_path)
    lake = tmp_path / "lake"
    sync_ok(env)
    damaged = holding(lake, 77)
    damage(damaged)
    others = untouched(lake, damaged)
    server.admin.post("modify", json={"pks": [77]})
    wait_for_server_clock(server, 0)  # the run must read the change and merge it there
    stopped = omnisync(env, "sync")
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 2, said
    assert "Traceback" not in said and len(said.strip().splitlines()) == 1, said
    assert "cannot be read" in said and "omnisync verify --full --repair" in said, said
    assert str(damaged.relative_to(lake)) in said, "the message names the file"
    found = omnisync(env, "verify", "--full")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "unreadable" in found.stdout, found.stdout
    mended = omnisync(env, "verify", "--full", "--repair")
    assert mended.returncode == 0, mended.stdout + mended.stderr[-2000:]
    after = untouched(lake, damaged)
    assert {path: after.get(path) for path in others} == others, "a healthy file lost customers"
    sync_ok(env)
    assert_lake_matches_truth(server, str(lake))


def test_a_full_refresh_stops_at_a_damaged_file_rather_than_drop_what_only_it_held(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """pk 100's newest version in Omnitron is malformed: the lake's older row is its only valid
    one, and the refresh cannot read it again. Its file damaged, the refresh stops in one line;
    after the repair (which restores that row from the change log) the refresh keeps it."""
    server = make_sandbox(customers=600, seed=5)
    env = environment(server, tmp_path)
    lake = tmp_path / "lake"
    sync_ok(env)
    malformed(server, 100, channel="web")
    sync_ok(env)
    damage_inside(holding(lake, 100))
    stopped = omnisync(env, "sync", "--full-refresh")
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 2 and "Traceback" not in said, said
    assert "omnisync verify --full --repair" in said, said
    mended = omnisync(env, "verify", "--full", "--repair")
    assert mended.returncode == 0, mended.stdout + mended.stderr[-2000:]
    sync_ok(env, "--full-refresh")
    held = pq.read_table(lake / "customers", columns=["pk"]).column("pk").to_pylist()
    assert 100 in held, "the customer whose only valid row the damaged file held was dropped"


def test_a_damaged_file_outside_customers_is_named_with_what_a_person_can_do(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300, seed=5)
    env = environment(server, tmp_path)
    lake = tmp_path / "lake"
    sync_ok(env)
    logged = sorted((lake / "customer_changes").rglob("*.parquet"))
    for path in logged:
        break_footer(path)
    server.admin.post("delete", json={"pks": [5]})
    stopped = omnisync(env, "sync")
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 2 and "Traceback" not in said, said
    assert "customer_changes/" in said and "restore it from a backup" in said, said
    assert "mends customers/ only" in said, said
    # damage stays: the window is not run again (which only kept a person waiting 15 s)
    assert "running it again" not in said, said


@pytest.mark.parametrize(
    ("error", "damage"),
    [
        (pa.ArrowInvalid("Parquet magic bytes not found in footer"), True),
        (OSError("Couldn't deserialize thrift: TProtocolException"), True),
        (PermissionError(errno.EACCES, "Permission denied"), False),
        (OSError(errno.EMFILE, "Too many open files"), False),
        (TimeoutError("read timed out"), False),
        (OSError(errno.EBUSY, "the object changed while it was read"), False),
        (pa.ArrowMemoryError("malloc failed"), False),
        (MemoryError(), False),
    ],
)
def test_only_errors_about_a_files_bytes_are_called_damage(
    error: BaseException, damage: bool
) -> None:
    assert damage_in(error) is damage


def test_the_daily_audit_finds_a_file_damaged_where_a_sync_has_not_read_yet(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """The `verify-customers` deployment runs `verify --audit --repair`: it reads every column
    of every file, so a damaged bucket is found before the sync that first merges into it."""
    server = make_sandbox(customers=600, seed=5)
    env = environment(server, tmp_path)
    lake = tmp_path / "lake"
    sync_ok(env)
    damage_inside(holding(lake, 77))
    audited = omnisync(env, "verify", "--audit")
    assert audited.returncode == 1, audited.stdout + audited.stderr[-2000:]
    assert "unreadable" in audited.stdout, audited.stdout
    mended = omnisync(env, "verify", "--audit", "--repair")
    assert mended.returncode == 0, mended.stdout + mended.stderr[-2000:]
    assert_lake_matches_truth(server, str(lake))
