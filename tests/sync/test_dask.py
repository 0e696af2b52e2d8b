"""Scale-out: backfill windows run on a local Dask cluster of 2 workers (prefect-dask).

The cluster's two worker processes each pay Python's, Prefect's and GX's imports: the test runs
in ``make test-e2e`` (which ``.ci/run`` runs after ``make test``), not in ``make test``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import SandboxServer
from tests.flows import sync_customers
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    settings_for,
)

Make = Callable[..., SandboxServer]


@pytest.mark.e2e
def test_a_full_refresh_on_a_local_dask_cluster_reaches_the_ground_truth(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)  # the workers are other processes
    server = make_sandbox(customers=2000, seed=4)
    settings = settings_for(
        server, tmp_path, dask_address="local", dask_workers=2, window_rows=600, lag_seconds=0
    )
    result = sync_customers(full_refresh=True, settings=settings)
    assert result["windows"] > 1
    assert_lake_matches_truth(server, settings.lake)
    assert_no_duplicate_versions(settings.lake)
