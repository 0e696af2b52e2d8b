"""The Prefect flow ``verify-customers``: orchestration only.

The steps are ``omnisync.verify.checkup.checkup``, the same ones ``omnisync verify`` runs from a
terminal: verify ``customers/`` against Omnitron (G9), and, with ``repair``, re-read what differs
as a normal run and verify again. The counts are published as an artifact table; a lake still
different at the end fails the run, with the verdict as its message.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Failed

from flows.orchestration import PrefectRun, failed_in_one_line
from flows.sync_customers import ACTIONABLE
from omnisync.settings import load_settings
from omnisync.verify.checkup import checkup

KEY = "verify-customers"


@flow(name="verify-customers", log_prints=False)
def verify_customers(full: bool = False, audit: bool = True, repair: bool = True) -> Any:
    """One verification of the lake (``full``: every customer; ``audit``: the next slice of
    the rolling exact audit), repaired when ``repair``; returns its counts, or a ``Failed``
    state when the lake still differs from Omnitron."""
    try:
        settings = load_settings()
        run = PrefectRun(settings)
        result = checkup(
            settings,
            full=full,
            audit=audit,
            repair=repair,
            say=lambda line, _: run.logger().warning("%s", line),
        )
    except ACTIONABLE as error:
        return failed_in_one_line(error)
    run.publish(KEY, result.markdown(), "what verify compared, found and repaired")
    run.logger().info("%s", result.outcome.line())
    if not result.outcome.equal:
        return Failed(message=result.outcome.line())
    return dict(result.rows())


if __name__ == "__main__":
    verify_customers()
