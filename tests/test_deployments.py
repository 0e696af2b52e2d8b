"""Every deployment in prefect.yaml loads, and its parameters validate against its flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.schedules import construct_schedule
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load((ROOT / "prefect.yaml").read_text())[
    "deployments"
]


def test_the_four_deployments_are_declared() -> None:
    names = {d["name"] for d in DEPLOYMENTS}
    assert names == {
        "customers-incremental",
        "customers-full-refresh",
        "verify-customers",
        "erp-reconcile",
    }


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_loads_and_parameters_validate(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    given = deployment.get("parameters", {})
    validated = flow.validate_parameters(given)
    assert {key: validated[key] for key in given} == given
    assert flow.parameters.model_dump()["properties"], "a parameter schema can be built"
    for schedule in deployment.get("schedules", []):
        kind = "cron" if "cron" in schedule else "interval"
        construct_schedule(**{kind: schedule[kind]}, timezone=schedule.get("timezone"))
    limit = deployment["concurrency_limit"]
    assert limit["limit"] == 1 and limit["collision_strategy"] in ("ENQUEUE", "CANCEL_NEW")
    assert deployment["work_pool"]["name"] == "omnisync"


def test_incremental_runs_every_15_minutes_and_reconcile_nightly() -> None:
    by_name = {d["name"]: d for d in DEPLOYMENTS}
    assert by_name["customers-incremental"]["schedules"][0]["interval"] == 900
    assert "schedules" not in by_name["customers-full-refresh"]
    assert by_name["erp-reconcile"]["schedules"][0]["cron"].split()[1] in {
        str(h) for h in range(0, 7)
    }
    verify = by_name["verify-customers"]
    assert len(verify["schedules"][0]["cron"].split()) == 5, "daily"
    assert verify["parameters"]["repair"] is True
