"""A long step says up front how long it should take, then how long is left."""

from __future__ import annotations

from omnisync.orchestration import Pacer, duration, progress_line


def test_the_first_report_says_what_is_ahead_at_the_configured_rate() -> None:
    line = progress_line("erp-write-back", 0, 5215, rate=10)
    assert line == "erp-write-back: 5,215 changes at 10/s: about 9 minutes"


def test_later_reports_give_the_time_left_at_the_pace_so_far() -> None:
    line = progress_line("erp-write-back", 1000, 5215, rate=10, elapsed=100.0)
    assert line == "erp-write-back: 1,000 of 5,215 (19%), about 7 minutes left"
    assert progress_line("erp-write-back", 5215, 5215, elapsed=521.0).endswith("(100%)")


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (1, 45, 521.5, 7200)] == [
        "1 second",
        "45 seconds",
        "9 minutes",
        "2.0 hours",
    ]


def test_a_report_counted_before_another_but_arriving_after_it_does_not_move_progress_back() -> (
    None
):
    pacer = Pacer(seconds=0.0)
    assert pacer.due(0, 10)
    assert pacer.due(10, 10)  # the last change's report came first
    assert not pacer.due(9, 10), "a late report of an earlier count is dropped"
    assert pacer.due(0, 5), "a new long step starts again"


def test_one_change_and_a_second_are_said_in_the_singular() -> None:
    assert progress_line("erp-write-back", 0, 1, rate=10) == (
        "erp-write-back: 1 change at 10/s: about 1 second"
    )
    assert duration(0.3) == "1 second"
