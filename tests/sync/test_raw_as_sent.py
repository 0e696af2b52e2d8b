"""G6: a quarantined record's ``raw`` is the text the server sent for it, byte for byte, whatever
order its fields came in (the API does not promise one), whichever decoding path it took."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from omnisync.orchestration import Local
from omnisync.sync.run import run_sync
from sandbox import SandboxServer
from tests.sync.sandbox_runs import settings_for
from tests.sync.test_bad_input import corrupt


def test_a_quarantined_records_raw_is_the_servers_text_in_the_servers_field_order(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(customers=80, shuffle_fields=True)
    corrupt(server, 17, is_active="yes")  # cannot be typed: decoded as sent
    corrupt(server, 23, attributes=[1, 2.50])  # typed, then refused by the transform
    settings = settings_for(server, tmp_path, lag_seconds=0)
    outcome = run_sync(settings, False, Local())
    assert isinstance(outcome, dict) and outcome["quarantined"] == 2, outcome
    quarantine = pq.read_table(f"{settings.lake}/quarantine/customers").to_pylist()
    raw = {row["pk"]: row["raw"] for row in quarantine}
    sent = server.state.last_listed
    assert set(raw) == {17, 23}
    for pk in (17, 23):
        assert raw[pk] == sent[pk].decode(), pk
    # the order was the server's own: not the documented one
    assert not raw[23].startswith('{"pk":') or not raw[17].startswith('{"pk":')
