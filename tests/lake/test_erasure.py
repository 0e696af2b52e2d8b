"""G9 erasure in real runs: a customer deleted in Omnitron, with ``OMNISYNC_ERASE_DELETED=true``,
leaves no byte of its email or phone number anywhere under the lake (raw file bytes, every
decoded Parquet value, every report's text), while other customers' rows and files stay as
they were; with the setting off nothing is erased; a run killed before or during the erasure
leaves it to the next run, which finishes it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from omnisync.state.deletions import pending_deletions
from omnisync.sync.context import STREAM, open_run
from sandbox import SandboxServer
from tests.sync.sandbox_runs import (
    cli_env,
    omnisync,
    settings_for,
    sync_ok,
    wait_for_server_clock,
)
from tests.sync.steps import deletions_checked
from tests.sync.test_bad_input import corrupt

Make = Callable[..., SandboxServer]

GONE = 42
EMAIL = "erase.me.7391@example.test"
PHONE = "+90 532 739 11 88"
PHONE_DIGITS = 905327391188  # the malformed version sends it as a number: its reason quotes it
KEPT = 43
KEPT_EMAIL = "keep.me.5120@example.test"
#: every form of the gone customer's email and phone number that must leave the lake
NEEDLES = (EMAIL, PHONE, str(PHONE_DIGITS))


class Killed(Exception):
    """Stands for the process dying at this point."""


def _strings(array: pa.Array) -> Iterator[str]:
    """Every string inside ``array``, through lists, structs, maps and extension types (JSON)."""
    if isinstance(array, pa.ChunkedArray):
        for chunk in array.chunks:
            yield from _strings(chunk)
        return
    kind = array.type
    if isinstance(array, pa.ExtensionArray):
        yield from _strings(array.storage)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        yield from (v for v in array.to_pylist() if v is not None)
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        yield from (v.decode("utf-8", "replace") for v in array.to_pylist() if v is not None)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        yield from _strings(array.flatten())
    elif pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            yield from _strings(array.field(index))


def leaks(lake: Path, needles: tuple[str, ...]) -> list[str]:
    """Where under ``lake`` any of ``needles`` is found: raw bytes of every file (Parquet
    footers and statistics included), each decoded string of every Parquet file, and the text
    of every other file."""
    found = []
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path}: bytes hold {n!r}" for n in needles if n.encode() in data]
        if path.suffix == ".parquet":
            table = pq.ParquetFile(path).read()
            for name in table.column_names:
                for value in _strings(table.column(name)):
                    found += [f"{path} {name}: {n!r}" for n in needles if n in value]
        else:
            text = data.decode("utf-8", "replace")
            found += [f"{path}: text holds {n!r}" for n in needles if n in text]
    return found


def _files(lake: Path, dataset: str) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(lake)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in (lake / dataset).rglob("*.parquet")
    }


def _holds(path: Path, pk: int) -> bool:
    return pk in pq.read_table(path, columns=["pk"]).column("pk").to_pylist()


def _rows_without(lake: Path, dataset: str, pk: int, names: list[str]) -> list[dict[str, Any]]:
    table = pq.read_table(lake / dataset)
    kept = table.filter(pc.fill_null(pc.not_equal(table["pk"], pk), True))
    return (
        sorted(kept.to_pylist(), key=repr)
        if not names
        else sorted((r for r in kept.to_pylist() if r["_run_id"] in names), key=repr)
    )


def _known_customer_quarantined(make_sandbox: Make, tmp_path: Path, erase: str) -> Any:
    """A lake where customer GONE has a good version in ``customer_changes/`` and a malformed
    one in the quarantine (both with EMAIL and its phone), then is deleted in Omnitron."""
    server = make_sandbox(customers=300, seed=31)
    # A trailing blank fails the email expectation (a warning): validation results and Data
    # Docs would quote the value if they kept unexpected values.
    corrupt(server, GONE, email=EMAIL + " ", phone_number=PHONE)
    corrupt(server, KEPT, email=KEPT_EMAIL)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED=erase)
    sync_ok(env)
    wait_for_server_clock(server, 0)
    corrupt(server, GONE, is_active="yes", phone_number=PHONE_DIGITS)
    sync_ok(env)
    lake = tmp_path / "lake"
    quarantined = pq.read_table(lake / "quarantine/customers").to_pylist()
    assert [q["pk"] for q in quarantined] == [GONE]
    assert "phone_number: not a string: 905327391188" in quarantined[0]["reasons"]
    assert EMAIL in quarantined[0]["raw"]
    changes = pq.read_table(lake / "customer_changes").to_pylist()
    versions = {
        (r["email"], r["phone_number"], *r["_dq_flags"]) for r in changes if r["pk"] == GONE
    }
    assert versions == {(EMAIL + " ", PHONE, "email_is_valid")}
    # The ERP reconciliation quotes match keys: a plan by email, then conflicts by phone.
    erp = tmp_path / "erp.csv"
    erp.write_text(
        f"email,phone_number,erp_code\n{EMAIL},{PHONE},ACC-1\n{KEPT_EMAIL},,ACC-2\n"
        f"x@example.test,{PHONE},ACC-3\n"
    )
    for key in ("email", "phone"):
        done = omnisync(env, "reconcile", "--erp-file", str(erp), "--match-on", key, "--dry-run")
        assert done.returncode == 0, done.stderr[-2000:]
    found = leaks(lake, NEEDLES)
    for place in (
        "reconciliation/plan/",
        "reconciliation/erp_rows/",
        "reconciliation/conflicts/",
        "_reports/reconciliation/",
    ):
        assert any(place in leak for leak in found), f"the test's premise: {place} quotes it"
    assert server.admin.post("delete", json={"pks": [GONE]}).json()["pks"] == [GONE]
    return server, env, lake


def test_a_deleted_customer_leaves_no_byte_of_its_email_or_phone_in_the_lake(
    make_sandbox: Make, tmp_path: Path
) -> None:
    _, env, lake = _known_customer_quarantined(make_sandbox, tmp_path, "true")
    before = {**_files(lake, "customer_changes"), **_files(lake, "quarantine/customers")}
    schemas = {path: pq.read_schema(lake / path) for path in before}
    runs = sorted({r["_run_id"] for r in pq.read_table(lake / "customer_changes").to_pylist()})
    others_changes = _rows_without(lake, "customer_changes", GONE, runs)
    others_quarantine = _rows_without(lake, "quarantine/customers", GONE, [])
    sync_ok(env)

    assert leaks(lake, NEEDLES) == []
    changes = pq.read_table(lake / "customer_changes")
    rows = [r for r in changes.to_pylist() if r["pk"] == GONE]
    assert {r["_op"] for r in rows} == {"upsert", "delete"}, "the history of the pk stays"
    for row in rows:
        assert row["email"] is row["phone_number"] is row["first_name"] is None
        assert row["modified_date"] is not None
    assert KEPT_EMAIL in changes.column("email").to_pylist(), "another customer is kept"
    quarantined = pq.read_table(lake / "quarantine/customers").to_pylist()
    assert [q["pk"] for q in quarantined] == [GONE]
    assert sorted(quarantined[0]["reasons"]) == [
        "is_active: not a boolean",
        "phone_number: not a string",
    ], "the reasons keep what was wrong, not the values"
    assert '"email":null' in quarantined[0]["raw"].replace(" ", "")
    assert '"pk":42' in quarantined[0]["raw"].replace(" ", "")

    # Other customers' rows are as they were, and files without the pk were not rewritten.
    assert _rows_without(lake, "customer_changes", GONE, runs) == others_changes
    assert _rows_without(lake, "quarantine/customers", GONE, []) == others_quarantine
    after = {**_files(lake, "customer_changes"), **_files(lake, "quarantine/customers")}
    untouched = [p for p in before if not _holds(lake / p, GONE) and p in after]
    assert untouched, "the test's premise: files without the customer"
    for path in untouched:
        assert after[path] == before[path], f"{path} was rewritten"
    rewritten = [p for p in before if _holds(lake / p, GONE)]
    assert rewritten and all(after[p][0] != before[p][0] for p in rewritten)
    for path in rewritten:  # the month a change-log file holds is in its schema's metadata
        assert pq.read_schema(lake / path).equals(schemas[path], check_metadata=True)


def test_with_the_setting_off_a_deletion_erases_nothing(make_sandbox: Make, tmp_path: Path) -> None:
    _, env, lake = _known_customer_quarantined(make_sandbox, tmp_path, "false")
    sync_ok(env)
    customers = pq.read_table(lake / "customers").column("pk").to_pylist()
    assert GONE not in customers, "the deletion itself is applied"
    changes = pq.read_table(lake / "customer_changes").to_pylist()
    assert EMAIL + " " in {r["email"] for r in changes if r["pk"] == GONE}
    assert EMAIL in pq.read_table(lake / "quarantine/customers").to_pylist()[0]["raw"]


@pytest.mark.parametrize("dies", ["before-the-erasure", "during-the-erasure"])
def test_a_run_killed_before_or_during_the_erasure_leaves_it_to_the_next_run(
    make_sandbox: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    server, env, lake = _known_customer_quarantined(make_sandbox, tmp_path, "true")

    def killed(*_: object, **__: object) -> None:
        raise Killed

    if dies == "before-the-erasure":
        monkeypatch.setattr("omnisync.sync.applying.erase_deleted", killed)
    else:  # the change log and the reports are erased, the quarantine not yet
        monkeypatch.setattr("omnisync.lake.erasure.erase_quarantine", killed)
    settings = settings_for(server, tmp_path, lag_seconds=0, erase_deleted=True)
    with open_run(settings, "killed", validate=False) as parts:
        with parts.store.lease.locked(STREAM, wait_seconds=0, run_id="killed") as fence:
            parts = parts.holding(fence)
            with pytest.raises(Killed):
                deletions_checked(parts, parts.client.server_time())
            assert [d.pk for d in pending_deletions(parts.store, STREAM)] == [GONE]
    monkeypatch.undo()
    assert leaks(lake, NEEDLES), "the killed run left the erasure unfinished"
    sync_ok(env)
    assert leaks(lake, NEEDLES) == []
    with open_run(settings, "after", validate=False) as after:
        assert pending_deletions(after.store, STREAM) == []
    deletes = [
        r["pk"]
        for r in pq.read_table(lake / "customer_changes").to_pylist()
        if r["_op"] == "delete"
    ]
    assert deletes == [GONE], "the deletion is logged once"


def test_settings_refuse_an_unknown_column_to_erase() -> None:
    from omnisync.settings import SettingsError, load_settings

    os.environ.pop("OMNISYNC_ERASE_COLUMNS", None)
    assert "email" in load_settings().erase_columns
    assert load_settings(erase_columns="email, phone_number").erase_columns == (
        "email",
        "phone_number",
    )
    with pytest.raises(SettingsError, match=r"^OMNISYNC_ERASE_COLUMNS: unknown column phone;.*"):
        load_settings(erase_columns="email,phone")
    with pytest.raises(SettingsError, match="OMNISYNC_ERASE_COLUMNS: unknown column pk"):
        load_settings(erase_columns='["pk"]')


def test_a_deletion_found_by_verify_repair_is_logged_and_erased(
    make_sandbox: Make, tmp_path: Path
) -> None:
    _, env, lake = _known_customer_quarantined(make_sandbox, tmp_path, "true")
    done = omnisync(env, "verify", "--repair")
    assert done.returncode == 0, done.stderr[-3000:]
    assert leaks(lake, NEEDLES) == []
    changes = pq.read_table(lake / "customer_changes").to_pylist()
    assert [r["pk"] for r in changes if r["_op"] == "delete"] == [GONE]
    assert GONE not in pq.read_table(lake / "customers").column("pk").to_pylist()


SHORT_PHONE = "300"  # as short as a count: every validation result holds "300" (300 customers)
SHORT_KEPT_EMAIL = "kept300.yok@example.test"


def test_scrubbing_reports_keeps_every_json_report_valid_and_other_customers_text_whole(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """An erased value as short as a count is replaced only where a report's field holds it
    whole: every JSON report still parses, the Data Docs index is rebuilt from the validation
    results, and another customer's text that merely contains the value stays as it was."""
    server = make_sandbox(customers=300, seed=41)
    corrupt(server, GONE, email=EMAIL, phone_number=SHORT_PHONE)
    corrupt(server, KEPT, email=SHORT_KEPT_EMAIL)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED="true")
    sync_ok(env)
    lake = tmp_path / "lake"
    erp = tmp_path / "erp.csv"
    erp.write_text(
        f"email,phone_number,erp_code\n{EMAIL},,ACC-1\n{SHORT_KEPT_EMAIL},,ACC-2\n"
        f"x@example.test,{SHORT_PHONE},ACC-3\n"
    )
    done = omnisync(env, "reconcile", "--erp-file", str(erp), "--match-on", "email", "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert omnisync(env, "verify").returncode == 0
    reports = sorted((lake / "_reports").rglob("*.json"))
    assert any("verify" in str(p) for p in reports) and len(reports) > 2
    kept_in = [
        p
        for p in (lake / "_reports").rglob("*")
        if p.is_file() and SHORT_KEPT_EMAIL.encode() in p.read_bytes()
    ]
    assert kept_in, "the test's premise: a report quotes the kept customer's email"
    assert server.admin.post("delete", json={"pks": [GONE]}).json()["pks"] == [GONE]
    sync_ok(env)

    assert leaks(lake, (EMAIL,)) == []
    for path in sorted((lake / "_reports").rglob("*.json")):
        json.loads(path.read_text())  # every JSON report still parses
    for path in kept_in:
        assert SHORT_KEPT_EMAIL.encode() in path.read_bytes(), f"{path} lost another's text"
    # The index is rebuilt (it is missing) from every validation result on disk.
    (lake / "_reports/data_docs/index.html").unlink()
    corrupt(server, 7, first_name="Rebuilt")
    wait_for_server_clock(server, 0)
    sync_ok(env)
    index = (lake / "_reports/data_docs/index.html").read_text()
    results = list((lake / "_reports/validation_results/customers").rglob("*.json"))
    assert len(results) >= 2, "the test's premise: validation results on disk"
    for path in results:  # <suite>/<run>/<validated at>/<name>.json
        assert path.parent.name in index, f"the index lists {path}"


def test_a_deleted_customer_is_erased_from_what_a_rebuild_moved_aside_too(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A full refresh of a lake of an older format moves its datasets under
    ``_before_rebuild/``: the customer's history there is erased like the current one."""
    server = make_sandbox(customers=300, seed=43)
    corrupt(server, GONE, email=EMAIL, phone_number=PHONE)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED="true")
    sync_ok(env)
    lake = tmp_path / "lake"
    (lake / "_meta/lake.json").unlink()  # a lake written before the format was recorded
    sync_ok(env, "--full-refresh")
    assert any("_before_rebuild/customer_changes" in leak for leak in leaks(lake, NEEDLES[:2]))
    assert server.admin.post("delete", json={"pks": [GONE]}).json()["pks"] == [GONE]
    sync_ok(env)
    assert leaks(lake, NEEDLES[:2]) == []
    aside = pq.read_table(lake / "_before_rebuild/customer_changes").to_pylist()
    assert KEPT in {r["pk"] for r in aside}, "other customers' history aside is kept"
