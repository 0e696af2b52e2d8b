"""The Prefect flows as tests call them: with the test's settings in effect.

A deployed flow takes no settings parameter (Prefect's custom-run form would show every setting,
passwords included); it reads them from its environment, or from ``settings_in_effect``, which
these wrappers set around each call. Everything else (``return_state`` and the flow's own
parameters) goes to the real flow run.
"""

from __future__ import annotations

from typing import Any

from flows.reconcile_erp_codes import reconcile_erp_codes as _reconcile_flow
from flows.sync_customers import sync_customers as _sync_flow
from omnisync.settings import Settings, settings_in_effect


def sync_customers(settings: Settings | None = None, **kwargs: Any) -> Any:
    with settings_in_effect(settings):
        return _sync_flow(**kwargs)


def reconcile_erp_codes(settings: Settings | None = None, **kwargs: Any) -> Any:
    with settings_in_effect(settings):
        return _reconcile_flow(**kwargs)
