"""A run's counts in its Prefect artifact: a table people read, not a Python dict's text."""

from __future__ import annotations

from omnisync.counts import counts_markdown


def test_nested_counts_get_a_row_each() -> None:
    table = counts_markdown(
        {
            "planned": 5215,
            "outcomes": {"ok": 5200, "skipped_changed": 15},
            "erp_row_outcomes": {},
            "report": "/lake/_reports/reconciliation/run=x/summary.html",
            "dry_run": False,
        }
    )
    lines = table.splitlines()
    assert lines[:2] == ["| what | value |", "|---|---|"]
    assert "| planned | 5,215 |" in lines
    assert "| outcomes: ok | 5,200 |" in lines
    assert "| outcomes: skipped changed | 15 |" in lines
    assert "| erp row outcomes | none |" in lines
    assert "| report | `/lake/_reports/reconciliation/run=x/summary.html` |" in lines
    assert "| dry run | False |" in lines
    assert "{" not in table
