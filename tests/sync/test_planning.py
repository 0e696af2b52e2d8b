"""Planning (G1): windows that cover the span exactly, on every server Omnitron's API allows."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.sync.planning import plan_windows
from tests.client.fake_omnitron import BASE, FakeOmnitron, customers, offsets

DAY = dt.timedelta(days=1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=customers(), date_only=st.booleans(), offset=offsets, target=st.integers(5, 80))
def test_planned_windows_cover_the_span_exactly_and_stay_near_the_target(
    rows: dict[int, dt.datetime], date_only: bool, offset: float, target: int
) -> None:
    server = FakeOmnitron(rows, order="newest-first", date_only=date_only, utc_offset_hours=offset)
    hi = BASE + 4 * DAY
    for lo in (None, BASE + dt.timedelta(hours=7)):
        with server.client() as client:
            windows = plan_windows(client, lo, hi, not date_only, target)
        assert windows[0][0] == lo and windows[-1][1] == hi
        assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
        if not date_only:
            for a, b in windows:
                inside = sum(1 for s in rows.values() if (a is None or s >= a) and s < b)
                assert (
                    inside <= target
                    or b - (a or b) <= dt.timedelta(seconds=1)
                    or (len({s for s in rows.values() if (a is None or s >= a) and s < b}) == 1)
                )
    assert all("sort" not in r for r in server.requests), "planning never relies on sort"
