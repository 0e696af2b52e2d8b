"""An Omnitron that suddenly has no customers (a token scoped to another channel, an empty
replica, a maintenance page answering ``count: 0``) does not empty the lake: the run refuses,
applying no deletion and erasing nothing, and fails; the lake is emptied only once an operator
lifts the limit (G9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from omnisync.settings import Settings
from omnisync.sync.mass_deletion import MINIMUM, MassDeletionRefused, refuse_mass_deletion
from tests.sync.sandbox_runs import cli_env, omnisync
from tests.sync.test_deletions import deletion_rows


def _emails_logged(lake: str) -> int:
    return int(
        duckdb.connect()
        .execute(
            f"select count(email) from read_parquet('{lake}/customer_changes/**/*.parquet', "
            "union_by_name = true)"
        )
        .fetchone()[0]  # type: ignore[index]
    )


@pytest.mark.parametrize("full_refresh", [False, True])
def test_an_emptied_omnitron_is_refused_and_the_lake_is_untouched(
    make_sandbox: Any, tmp_path: Path, full_refresh: bool
) -> None:
    server = make_sandbox(customers=200)
    env = cli_env(server, tmp_path, "", OMNISYNC_LAG_SECONDS="0", OMNISYNC_ERASE_DELETED="true")
    first = omnisync(env, "sync")
    assert first.returncode == 0, first.stderr[-2000:]
    lake = str(tmp_path / "lake")
    before = pq.read_table(f"{lake}/customers").sort_by("pk")
    emails = _emails_logged(lake)
    pks = before["pk"].to_pylist()
    assert server.admin.post("delete", json={"pks": pks}).json()["pks"]

    args = ["sync", "--full-refresh"] if full_refresh else ["sync"]
    refused = omnisync(env, *args)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "OMNISYNC_MAX_DELETIONS_SHARE" in refused.stderr
    assert "Omnitron counts 0 customers" in refused.stderr
    assert pq.read_table(f"{lake}/customers").sort_by("pk").equals(before)
    assert deletion_rows(lake) == []
    assert _emails_logged(lake) == emails  # nothing erased
    again = omnisync(env, "sync")  # refused again, not forgotten
    assert again.returncode == 1, again.stderr[-2000:]

    lifted = omnisync({**env, "OMNISYNC_MAX_DELETIONS_SHARE": "1"}, *args)
    assert lifted.returncode == 0, lifted.stderr[-2000:]
    assert pq.read_table(f"{lake}/customers").num_rows == 0
    assert deletion_rows(lake) == sorted(pks)


def test_more_than_the_share_of_the_lake_is_refused_and_a_few_are_not() -> None:
    settings = Settings(omnitron_url="https://omnitron.test", omnitron_token="t")  # type: ignore[call-arg]
    refuse_mass_deletion(settings, 10, 10, 10)  # a small lake's few: under the minimum
    refuse_mass_deletion(settings, 100_000, 5000, 95_000)  # 5%: allowed
    with pytest.raises(MassDeletionRefused):
        refuse_mass_deletion(settings, 100_000, 5001, 95_000)
    with pytest.raises(MassDeletionRefused):
        refuse_mass_deletion(settings, 10, 0, 0)
    refuse_mass_deletion(settings, 0, 0, 0)  # an empty lake has nothing to lose
    assert MINIMUM == 50
    lifted = settings.model_copy(update={"max_deletions_share": 1.0})
    refuse_mass_deletion(lifted, 100_000, 100_000, 0)
