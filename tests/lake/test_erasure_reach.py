"""G9 erasure reaches every place a deleted customer's values are kept, and no further: a match
key it shared with a live customer stays (it is that customer's too) until every customer it
named is deleted; then it leaves every reconciliation dataset and report, the ERP row of the
ambiguous match included; and rows a plan staged under ``_staging/`` are erased as well."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from omnisync.sync import sync_window
from omnisync.sync.context import STREAM, open_run
from sandbox import SandboxServer
from tests.lake.test_erasure import leaks
from tests.sync.sandbox_runs import (
    cli_env,
    omnisync,
    settings_for,
    sync_ok,
    wait_for_server_clock,
)
from tests.sync.steps import deletions_checked, plan_for
from tests.sync.test_bad_input import corrupt

Make = Callable[..., SandboxServer]

GONE, LIVE = 42, 43
EMAIL = "erase.me.8812@example.test"
LIVE_EMAIL = "stays.here.8812@example.test"
SHARED_PHONE = "+90 532 739 11 88"
SHARED_KEY = "+905327391188"  # the phone as the reconciliation matches and quotes it


def _table(lake: Path, name: str) -> list[dict[str, Any]]:
    return pq.read_table(lake / "reconciliation" / name).to_pylist()


def _ambiguous(lake: Path) -> tuple[list[Any], list[Any]]:
    """The key of the ambiguous phone match in ``conflicts`` and in ``erp_rows``."""
    conflicts = [c["key"] for c in _table(lake, "conflicts") if c["pks"] == [GONE, LIVE]]
    rows = [
        r["key"]
        for r in _table(lake, "erp_rows")
        if r["erp_code"] == "ACC-9" and r["outcome"] == "conflict"
    ]
    return conflicts, rows


def _reports_holding(lake: Path, value: str) -> list[Path]:
    return [
        p
        for p in (lake / "_reports/reconciliation").rglob("*")
        if p.is_file() and value.encode() in p.read_bytes()
    ]


def test_a_match_key_shared_with_a_live_customer_stays_until_both_are_deleted(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=300, seed=47)
    corrupt(server, GONE, email=EMAIL, phone_number=SHARED_PHONE)
    corrupt(server, LIVE, email=LIVE_EMAIL, phone_number=SHARED_PHONE)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED="true")
    sync_ok(env)
    lake = tmp_path / "lake"
    erp = tmp_path / "erp.csv"
    erp.write_text(f"email,phone_number,erp_code\n{EMAIL},,ACC-1\n,{SHARED_PHONE},ACC-9\n")
    for key in ("email", "phone"):
        done = omnisync(env, "reconcile", "--erp-file", str(erp), "--match-on", key, "--dry-run")
        assert done.returncode == 0, done.stderr[-2000:]
    assert _ambiguous(lake) == ([SHARED_KEY], [SHARED_KEY]), "the test's premise"
    reports = _reports_holding(lake, SHARED_KEY)
    assert reports, "the test's premise: a report quotes the shared key"

    assert server.admin.post("delete", json={"pks": [GONE]}).json()["pks"] == [GONE]
    sync_ok(env)
    assert leaks(lake, (EMAIL,)) == []
    assert _ambiguous(lake) == ([SHARED_KEY], [SHARED_KEY]), "the live customer's key stays"
    assert _reports_holding(lake, SHARED_KEY) == reports, "and its reports still quote it"
    customers = pq.read_table(lake / "customers").to_pylist()
    live = [c for c in customers if c["pk"] == LIVE]
    assert [(c["email"], c["phone_number"]) for c in live] == [(LIVE_EMAIL, SHARED_PHONE)]

    # Once no customer it named is left, the key is nobody's: it leaves every dataset.
    assert server.admin.post("delete", json={"pks": [LIVE]}).json()["pks"] == [LIVE]
    wait_for_server_clock(server, 0)
    sync_ok(env)
    assert leaks(lake, (EMAIL, LIVE_EMAIL, SHARED_PHONE, SHARED_KEY)) == []
    assert _ambiguous(lake) == ([None], [None])


@pytest.mark.parametrize("plan", ["open", "closed"])
def test_rows_a_plan_staged_are_erased_and_do_not_bring_the_customer_back(
    make_sandbox: Make, tmp_path: Path, plan: str
) -> None:
    """A run stages pk 42's new version (with its email) and dies: before merging it (the plan
    stays open), or after closing the plan but before removing its staging. 42 is deleted in
    Omnitron, and the deletion is applied while the staged files are still there: no byte of
    the email may be left in them, and finishing the plan must not bring 42 back."""
    server = make_sandbox(customers=300, seed=53)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED="true")
    lake = tmp_path / "lake"
    sync_ok(env)
    corrupt(server, GONE, email=EMAIL, phone_number=SHARED_PHONE)
    wait_for_server_clock(server, 0)
    settings = settings_for(server, tmp_path, lag_seconds=0, erase_deleted=True)
    with open_run(settings, "interrupted") as parts:
        with parts.store.lease.locked(STREAM, wait_seconds=0, run_id="interrupted") as fence:
            parts = parts.holding(fence)
            staged = plan_for(parts)
            for lo, hi in staged.windows:
                sync_window(parts, staged.plan_id, lo, hi)
            if plan == "closed":
                parts.store.plans.close(STREAM, staged.plan_id, fence=fence)
    assert any("_staging" in leak for leak in leaks(lake, (EMAIL,))), "the test's premise"
    assert server.admin.post("delete", json={"pks": [GONE]}).json()["pks"] == [GONE]
    if plan == "open":  # the deletion is applied while the plan is still open
        with open_run(settings, "deleting", validate=False) as parts:
            with parts.store.lease.locked(STREAM, wait_seconds=0, run_id="deleting") as fence:
                parts = parts.holding(fence)
                deletions_checked(parts, parts.client.server_time())
    else:  # a repair finishes no closed plan and plans nothing: the staging is still there
        done = omnisync(env, "verify", "--repair")
        assert done.returncode == 0, done.stderr[-3000:]
    assert leaks(lake, (EMAIL, SHARED_PHONE)) == []
    sync_ok(env)
    assert GONE not in pq.read_table(lake / "customers").column("pk").to_pylist()
    assert leaks(lake, (EMAIL, SHARED_PHONE)) == []
