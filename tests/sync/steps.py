"""A run's steps called from a test with one open context, each given the collaborators it
takes (the way ``omnisync/sync/run.py`` calls them)."""

from __future__ import annotations

import datetime as dt

from omnisync.sync import Plan, PlanTotals, RunContext, finish_plan, new_plan
from omnisync.sync.deletions import DeletionCheck, check_deletions


def plan_for(context: RunContext, full_refresh: bool = False) -> Plan:
    return new_plan(
        full_refresh,
        settings=context.settings,
        client=context.client,
        datetimes=context.datetimes,
        total=context.total,
        store=context.store,
        fence=context.fence,
        storage=context.storage,
    )


def finish(context: RunContext, plan: Plan) -> PlanTotals:
    return finish_plan(
        plan,
        settings=context.settings,
        client=context.client,
        store=context.store,
        fence=context.fence,
        run_id=context.run_id,
        storage=context.storage,
        changes=context.changes,
        snapshot=context.snapshot,
    )


def deletions_checked(
    context: RunContext, upper: dt.datetime, full_refresh: bool = False
) -> DeletionCheck:
    return check_deletions(
        upper,
        full_refresh,
        settings=context.settings,
        client=context.client,
        datetimes=context.datetimes,
        store=context.store,
        fence=context.fence,
        run_id=context.run_id,
        storage=context.storage,
        changes=context.changes,
        snapshot=context.snapshot,
    )
