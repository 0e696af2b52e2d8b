"""What a scheduler sees of the flows: the parameters a run needs, and no setting.

Prefect's custom-run form shows every flow parameter. Settings (passwords, the state and ERP
database URLs) come from the worker's environment, never from a parameter.
"""

from __future__ import annotations

from prefect.utilities.callables import parameter_schema

from flows.reconcile_erp_codes import reconcile_erp_codes
from flows.sync_customers import sync_customers
from flows.verify_customers import verify_customers


def test_the_deployed_flows_take_only_what_a_scheduler_needs() -> None:
    sync = parameter_schema(sync_customers.fn).properties
    assert set(sync) == {"full_refresh"}
    reconcile = parameter_schema(reconcile_erp_codes.fn).properties
    assert set(reconcile) == {
        "erp_file",
        "erp_query",
        "match_on",
        "dry_run",
        "max_changes",
        "force",
        "clear_unknown",
        "columns",
        "erp_url_secret",
    }
    verify = parameter_schema(verify_customers.fn).properties
    assert set(verify) == {"full", "audit", "repair"}
    shown = str(sync) + str(reconcile) + str(verify)
    assert "password" not in shown.lower() and "format" not in shown
