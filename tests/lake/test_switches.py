"""G2 at every moment: a crash between any two file operations of change-log compaction or of
the snapshot merge leaves readers (DuckDB and pyarrow) one row per key, and running again
converges. Each test crashes at step 1, then at step 2, and so on until the operation completes.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest

from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from tests.lake.test_lake import T0, versions


class Crash(Exception):
    """Stands for SIGKILL between two file operations."""


class CrashingStorage(LakeStorage):
    """Lake storage that dies before its ``crash_at``-th change to the lake."""

    def __init__(self, root: str, crash_at: int, swap: bool = True) -> None:
        super().__init__(root)
        self.crash_at = crash_at
        self.changes = 0
        self.swap = swap

    def _step(self) -> None:
        self.changes += 1
        if self.changes == self.crash_at:
            raise Crash(f"killed before change {self.changes}")

    def write_table(self, relative: str, table: pa.Table) -> None:
        self._step()
        super().write_table(relative, table)

    def write_row_groups(
        self, relative: str, groups: Iterable[pa.Table], scratch: bool = False
    ) -> None:
        self._step()
        super().write_row_groups(relative, groups, scratch)

    def write_json(self, relative: str, value: dict[str, Any]) -> None:
        self._step()
        super().write_json(relative, value)

    def delete(self, relative: str) -> None:
        self._step()
        super().delete(relative)

    def delete_tree(self, relative: str) -> None:
        self._step()
        super().delete_tree(relative)

    def swap_directories(self, staged: str, target: str) -> bool:
        self._step()
        return self.swap and super().swap_directories(staged, target)


def change_log_keys(root: Path) -> list[tuple[int, Any]]:
    """Every (pk, modified_date) a reader sees in customer_changes/, checked with both readers."""
    if not list((root / "customer_changes").rglob("*.parquet")):
        return []  # (without an atomic swap, a switch may briefly show no file at all)
    table = pq.read_table(root / "customer_changes", columns=["pk", "modified_date"])
    keys = sorted(
        zip(table.column("pk").to_pylist(), table.column("modified_date").to_pylist(), strict=True)
    )
    seen = (
        duckdb.connect()
        .execute(
            f"select count(*), count(distinct (pk, modified_date)) from "
            f"read_parquet('{root}/customer_changes/**/*.parquet')"
        )
        .fetchone()
    )
    assert seen is not None and seen[0] == len(keys), "DuckDB and pyarrow see the same rows"
    return keys


def snapshot_pks(root: Path) -> list[int]:
    pks: list[int] = sorted(
        pq.read_table(root / "customers", columns=["pk"]).column("pk").to_pylist()
    )
    seen = (
        duckdb.connect()
        .execute(f"select count(*) from read_parquet('{root}/customers/**/*.parquet')")
        .fetchone()
    )
    assert seen is not None and seen[0] == len(pks), "DuckDB and pyarrow see the same rows"
    return pks


def change_log_to_compact(root: Path) -> list[tuple[int, Any]]:
    """A change log whose two months each hold several window files."""
    log = ChangeLog(LakeStorage(str(root)))
    day = 24 * 60
    log.write_window(versions([(pk, pk * 997 % (50 * day)) for pk in range(1, 60)]), "w1")
    log.write_window(
        versions([(pk, pk * 991 % (50 * day) + 1) for pk in range(30, 90)], run=2), "w2"
    )
    log.write_window(
        versions([(pk, pk * 983 % (50 * day) + 2) for pk in range(60, 120)], run=3), "w3"
    )
    return change_log_keys(root)


def crash_at_every_step(
    prepare: Callable[[Path], Any],
    act: Callable[[LakeStorage], None],
    check_after_crash: Callable[[Path, Any], None],
    tmp_path: Path,
    swap: bool = True,
) -> int:
    template = tmp_path / "template"
    expected = prepare(template)
    for crash_at in range(1, 500):
        root = tmp_path / f"crash-{crash_at}"
        shutil.copytree(template, root)
        storage = CrashingStorage(str(root), crash_at, swap=swap)
        try:
            act(storage)
        except Crash:
            check_after_crash(root, expected)
            act(LakeStorage(str(root)))  # the next run
            check_after_crash(root, expected)
            continue
        return crash_at
    raise AssertionError("the operation never completed")


def reader_check(
    swap: bool, read: Callable[[Path], list[Any]], what: str
) -> Callable[[Path, list[Any]], None]:
    """What a reader may see of a dataset (``read``: its keys) after a crash: never a ``what``
    twice; with an atomic swap, exactly the ones before; without one, possibly fewer for a
    moment."""

    def check(root: Path, expected: list[Any]) -> None:
        keys = read(root)
        assert len(keys) == len(set(keys)), f"no {what} is visible twice"
        if swap:
            assert keys == expected, f"with an atomic swap no {what} is ever missing either"
        else:
            assert set(keys) <= set(expected)

    return check


def change_log_check(swap: bool) -> Callable[[Path, list[Any]], None]:
    return reader_check(swap, change_log_keys, "version")


@pytest.mark.parametrize("swap", [True, False], ids=["atomic-swap", "object-store-fallback"])
def test_a_crash_at_any_step_of_compaction_never_shows_a_version_twice(
    tmp_path: Path, swap: bool
) -> None:
    before = (T0 + dt.timedelta(days=70)).date()  # both months are closed

    def compact(storage: LakeStorage) -> None:
        ChangeLog(storage).compact(before=before)

    check = change_log_check(swap)
    steps = crash_at_every_step(change_log_to_compact, compact, check, tmp_path, swap)
    assert steps > 6, "compaction was interrupted at each of its steps"
    final = tmp_path / f"crash-{steps}"
    assert change_log_keys(final) == change_log_to_compact(tmp_path / "again")
    for month in (final / "customer_changes").iterdir():
        assert len(list(month.glob("*.parquet"))) == 1, f"{month.name} is compacted into one file"
    assert not list((final / "_staging").rglob("*.parquet")), "nothing is left staged"


def test_a_crash_at_any_step_of_the_snapshot_merge_never_shows_a_customer_twice(
    tmp_path: Path,
) -> None:
    def prepare(root: Path) -> list[int]:
        snapshot = Snapshot(LakeStorage(str(root)), buckets=4)
        snapshot.merge(versions([(pk, 1) for pk in range(1, 80)]))
        return list(range(1, 120))

    changes = versions([(pk, 5) for pk in range(40, 120)], run=2)

    def merge(storage: LakeStorage) -> None:
        Snapshot(storage, buckets=4).merge(changes)

    def check(root: Path, expected: list[int]) -> None:
        pks = snapshot_pks(root)
        assert len(pks) == len(set(pks)), "no customer is visible twice"
        assert set(range(1, 80)) <= set(pks) <= set(expected), "no customer disappears"

    steps = crash_at_every_step(prepare, merge, check, tmp_path)
    assert steps > 3
    assert snapshot_pks(tmp_path / f"crash-{steps}") == list(range(1, 120))


def snapshot_check(swap: bool) -> Callable[[Path, list[Any]], None]:
    def visible(root: Path) -> list[Any]:
        return snapshot_pks(root) if list((root / "customers").rglob("*.parquet")) else []

    return reader_check(swap, visible, "customer")
