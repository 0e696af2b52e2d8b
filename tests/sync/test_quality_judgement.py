"""When the quarantined share is a systemic problem: per run, and over the latest records."""

from __future__ import annotations

from omnisync.settings import load_settings
from omnisync.sync.finish import PlanTotals, quality_problem

SETTINGS = load_settings(
    omnitron_url="http://omnitron.invalid", lake="/tmp/unused", state_url="sqlite://"
)


def run(rows: int, quarantined: int) -> PlanTotals:
    return PlanTotals(rows=rows, quarantined=quarantined, fresh=rows, fresh_quarantined=quarantined)


def test_one_bad_customer_among_a_dozen_is_not_a_systemic_problem() -> None:
    assert quality_problem(run(12, 1), SETTINGS) is None
    assert quality_problem(run(12, 1), SETTINGS, earlier_read=988, earlier_quarantined=0) is None


def test_a_small_run_that_is_mostly_broken_is_judged_by_its_own_share() -> None:
    assert SETTINGS.quarantine_min_rows == 1000 and SETTINGS.max_quarantine_share == 0.05
    assert quality_problem(run(50, 50), SETTINGS) is None, "50 is the share of 1,000: not more"
    problem = quality_problem(run(51, 51), SETTINGS)
    assert problem is not None and "51 of 51" in problem


def test_a_few_broken_customers_a_run_add_up_over_the_latest_records() -> None:
    assert quality_problem(run(20, 20), SETTINGS, earlier_read=980, earlier_quarantined=30) is None
    problem = quality_problem(run(20, 20), SETTINGS, earlier_read=980, earlier_quarantined=40)
    assert problem is not None and "60 of the 1,000 records" in problem


def test_a_large_run_keeps_the_plain_share_rule() -> None:
    assert quality_problem(run(10_000, 500), SETTINGS) is None
    assert quality_problem(run(10_000, 501), SETTINGS) is not None
