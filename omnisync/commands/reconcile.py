"""``omnisync reconcile``: the ERP's codes written back to Omnitron (G7), and its report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from omnisync.commands.terminal import console, fail, results, run_log
from omnisync.commands.user_errors import user_errors

if TYPE_CHECKING:
    from transforms.erp.tables import MatchKey

MATCH_KEYS = ("pk", "channel_code", "email", "phone")


def reconcile(
    erp_file: Path | None = typer.Option(None, help="CSV or Parquet file with the ERP's codes"),
    erp_url: str | None = typer.Option(
        None, help="SQLAlchemy URL of the ERP database (or OMNISYNC_ERP_URL)"
    ),
    erp_query: str | None = typer.Option(None, help="SQL returning erp_code and the match keys"),
    match_on: str = typer.Option("pk", help="pk, channel_code (with channel), email or phone"),
    dry_run: bool = typer.Option(False, "--dry-run", help="plan and report, patch nothing"),
    max_changes: str = typer.Option(
        "2%", help="stop if the plan is larger: a count (500), a share (2%), or none"
    ),
    force: bool = typer.Option(False, "--force", help="go on even above --max-changes"),
    clear_unknown: bool = typer.Option(False, help="clear erp_codes the ERP does not know"),
    column: list[str] = typer.Option([], help="map a column: erp_code=ACCOUNT_NO (repeatable)"),
) -> None:
    """Reconcile Omnitron's erp_codes with the ERP and write the differences back."""
    out = results()  # the outcome; progress and log lines go to stderr
    with user_errors(
        stopped="no PATCH was sent after it but any already on its way, each recorded in the "
        "ledger; the next `omnisync reconcile` plans again and looks at each customer's current "
        "record before it patches"
    ):
        from omnisync.settings import load_settings

        if match_on not in MATCH_KEYS:
            raise fail(f"--match-on must be pk, channel_code, email or phone, got {match_on!r}", 2)
        key = cast("MatchKey", match_on)
        if erp_file is not None and erp_query is not None:
            raise fail("give one ERP input, not both: --erp-file, or --erp-query with --erp-url", 2)
        if erp_file is None and erp_query is None:
            raise fail("give --erp-file, or --erp-query with --erp-url (or OMNISYNC_ERP_URL)", 2)
        mapping = {}
        for item in column:
            name, sep, column_name = item.partition("=")
            if not sep or not name or not column_name:
                raise fail(f"--column takes FIELD=SOURCE_COLUMN, got {item!r}", 2)
            mapping[name.strip()] = column_name.strip()
        from omnisync.erp.refusal import parse_limit

        parse_limit(max_changes, 0)  # its syntax, before anything starts
        settings = load_settings(erp_url=erp_url)
        if erp_query and settings.erp_url is None:
            raise fail("--erp-query needs --erp-url or OMNISYNC_ERP_URL", 2)
        from omnisync.erp import WriteBackFailed

        options: dict[str, Any] = {
            "dry_run": dry_run,
            "max_changes": max_changes,
            "force": force,
            "clear_unknown": clear_unknown,
        }
        from omnisync.prefect_api import configured_prefect_api

        api = configured_prefect_api()
        failure: WriteBackFailed | None = None
        with (
            run_log(settings.log_level, local=api is None),
            console.status("reconciling ERP codes ...") as status,
        ):
            try:
                if api is None:
                    from omnisync.erp import ErpSource
                    from omnisync.erp.run import run_reconcile
                    from omnisync.orchestration import Local

                    source = ErpSource(
                        file=erp_file,
                        url=settings.erp_url.get_secret_value() if settings.erp_url else None,
                        query=erp_query,
                        columns=mapping,
                    )

                    def show(line: str, done: int) -> None:
                        if done == 0:  # what is ahead, and how long: kept on the screen
                            console.print(line, highlight=False, soft_wrap=True)
                        status.update(line)

                    local = Local(on_progress=show)
                    summary = run_reconcile(settings, source, key, local, **options)
                else:
                    from flows.reconcile_erp_codes import reconcile_erp_codes
                    from omnisync.settings import settings_in_effect

                    with settings_in_effect(settings):
                        summary = reconcile_erp_codes(
                            erp_file=str(erp_file) if erp_file else None,
                            erp_query=erp_query,
                            match_on=key,
                            columns=mapping,
                            **options,
                        )
            except WriteBackFailed as exc:
                failure, summary = exc, exc.result.summary()
    outcomes = (
        ", ".join(f"{n:,} {k}" for k, n in sorted(summary["outcomes"].items())) or "nothing sent"
    )
    if summary.get("lost_answers"):
        lost = summary["lost_answers"]
        outcomes += (
            f" ({lost} PATCH{'es' if lost != 1 else ''} with no certain answer: each customer "
            "was read again before anything more was sent)"
        )
    rows = " + ".join(
        f"{n:,} {name.replace('_', ' ')}" for name, n in summary["erp_row_outcomes"].items()
    )
    out.print(
        f"{'[yellow]dry run[/yellow]' if dry_run else '[green]done[/green]'}: "
        f"{summary['erp_rows']:,} ERP rows = {rows}; {summary['planned']:,} changes planned, "
        f"{summary['conflicts']:,} conflicts, {summary['unknown_in_erp']:,} Omnitron codes "
        f"unknown to the ERP; write-back: {outcomes}\n"
        f"tables: {summary['report']}/<table>/run={summary['run_id']}/ (plan, conflicts, "
        "unknown_in_erp, outcomes; erp_rows says what became of each ERP row); "
        f"for people: {summary['summary']} and a CSV per outcome beside it",
        highlight=False,
        soft_wrap=True,
    )
    if summary.get("would_stop"):
        console.print(
            f"[yellow]note:[/yellow] {summary['would_stop']}", highlight=False, soft_wrap=True
        )
    if failure is not None:
        raise fail(str(failure), 1)
