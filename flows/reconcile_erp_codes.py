"""The Prefect flow ``reconcile-erp-codes``: orchestration only; the work is in ``omnisync.erp``.

The ERP database URL is a secret: it comes from the settings (``OMNISYNC_ERP_URL`` or a Prefect
Secret block named by ``erp_url_secret``), never from a flow parameter that the UI would show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import SecretStr

from omnisync.erp import ErpSource, PlanRejected, PlanTooLarge, WriteBackFailed, reconcile
from omnisync.settings import Settings, load_settings


@flow(name="reconcile-erp-codes", log_prints=False)
def reconcile_erp_codes(
    erp_file: str | None = None,
    erp_query: str | None = None,
    match_on: Literal["pk", "channel_code", "email", "phone"] = "pk",
    dry_run: bool = False,
    max_changes: str | None = None,
    force: bool = False,
    clear_unknown: bool = False,
    columns: dict[str, str] | None = None,
    erp_url_secret: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One reconciliation run; returns its summary (counts by outcome, report location)."""
    settings = settings or load_settings()
    logger = get_run_logger()
    url = settings.erp_url
    if erp_url_secret:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(erp_url_secret)
        url = SecretStr(str(block.get()))
    source = ErpSource(
        file=Path(erp_file) if erp_file else None,
        url=url.get_secret_value() if url else None,
        query=erp_query,
        columns=columns or {},
    )
    failure: WriteBackFailed | None = None
    try:
        result = reconcile(
            settings,
            source,
            match_on,
            dry_run=dry_run,
            max_changes=max_changes,
            force=force,
            clear_unknown=clear_unknown,
        )
    except WriteBackFailed as exc:
        failure, result = exc, exc.result
    except (PlanTooLarge, PlanRejected) as stopped:
        # Nothing was patched: say so where the scheduler looks, then fail the run.
        create_markdown_artifact(
            f"# reconcile-erp-codes: stopped before any PATCH\n\n{stopped}\n",
            key="reconcile-erp-codes",
            description="why the plan was not applied",
        )
        raise
    summary = result.summary()
    rows = "\n".join(f"| {key} | {value} |" for key, value in summary.items())
    create_markdown_artifact(
        f"# reconcile-erp-codes `{result.run_id}`\n\n| what | value |\n|---|---|\n{rows}\n",
        key="reconcile-erp-codes",
        description="plan size, conflicts and write-back outcomes",
    )
    logger.info("reconciliation %s: %s", result.run_id, summary)
    if failure is not None:
        raise failure  # the flow run fails, with its counts in the artifact
    return summary


if __name__ == "__main__":
    reconcile_erp_codes()
