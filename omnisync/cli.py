"""The ``omnisync`` command line (its commands: README.md, in full docs/operations.md).

A user's mistake ends with a one-line message naming what to fix and exit code 2, never a traceback.
The sandbox is imported only inside the commands that run it: production paths never load it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer
from rich.console import Console

app = typer.Typer(
    name="omnisync",
    help="Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
MATCH_KEYS = ("pk", "channel_code", "email", "phone")
if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from omnisync.settings import Settings
    from omnisync.sync import RunParts
    from transforms.erp import MatchKey
# Before Prefect is imported: no telemetry from an offline scheduler host.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The library logs through stdlib loggers named omnisync.*: let Prefect ship them with the run.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "omnisync")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # preflight runs first


@app.callback()
def _root() -> None:
    """Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron."""
    import stamina.instrumentation

    # The client logs each retry itself, naming the host and the reason; stamina's own lines
    # (``stamina.retry_scheduled``) would only repeat them without that context.
    stamina.instrumentation.set_on_retry_hooks([])


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _skip(message: str) -> typer.Exit:
    """A run that did nothing because another is working: exit 3, and not called an error."""
    console.print(f"[yellow]skipped:[/yellow] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(3)


def _loaded(module: str, name: str) -> type[BaseException]:
    """An exception class of ``module`` if that module is loaded, else one nothing raises: an
    error of a module that was never imported cannot have happened, and a command that fails
    on a setting does not pay for importing the sync's or the lake's code to name it."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else _NeverRaised


class _NeverRaised(Exception):
    pass


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line and an exit code; never a traceback."""
    from omnisync.settings import SettingsError

    try:
        yield
    except SettingsError as exc:
        raise _fail(str(exc), 2) from None
    except Exception as exc:
        client = "omnisync.client.errors"
        state = "omnisync.state.errors"
        erp = "omnisync.erp.reconcile"
        if isinstance(
            exc,
            (
                _loaded(client, "ConfigurationError"),
                _loaded(client, "AuthenticationFailed"),
                _loaded("omnisync.lake.storage", "LakeError"),
            ),
        ):
            raise _fail(str(exc), 2) from None
        if isinstance(exc, _loaded(state, "LockHeld")):
            raise _skip(str(exc)) from None
        if isinstance(exc, _loaded(state, "LockLost")):
            raise _fail(str(exc), 1) from None
        if isinstance(exc, _loaded(state, "StateError")):
            raise _fail(str(exc), 2) from None
        if isinstance(exc, _loaded(client, "OmnitronError")):
            raise _fail(f"Omnitron: {exc}", 1) from None
        rejected = (
            _loaded("omnisync.sync.window", "BatchRejected"),
            _loaded("transforms.customers", "SchemaDrift"),
        )
        if isinstance(exc, rejected):
            raise _fail(f"the batch was rejected, watermark unchanged: {exc}", 1) from None
        refused = (_loaded("omnisync.erp.source", "ErpInputError"), _loaded(erp, "PlanRejected"))
        if isinstance(exc, refused):
            raise _fail(f"{exc}; nothing was patched", 2) from None
        if isinstance(exc, _loaded(erp, "PlanTooLarge")):
            raise _fail(str(exc), 4) from None
        raise


@app.command()
def sync(
    full_refresh: bool = typer.Option(False, "--full-refresh", help="re-read the whole history"),
) -> None:
    """Run the customer sync once: incremental from the watermark, or a full refresh."""
    with _user_errors():
        from omnisync.settings import load_settings

        settings = load_settings()  # before the sync's imports: a mistake answers at once
        from omnisync.sync import preflight

        api = _prefect_api()
        if settings.dask_address and api is None:
            console.print(
                "[yellow]note:[/yellow] OMNISYNC_DASK_ADDRESS applies to Prefect runs (with "
                "PREFECT_API_URL set); this run extracts its windows on threads "
                "(OMNISYNC_WINDOW_CONCURRENCY)",
                highlight=False,
                soft_wrap=True,
            )
        if settings.lock_wait_seconds == 0:
            _refuse_if_busy(settings, "full" if full_refresh else "incremental")
        with console.status("checking the lake, the state database and Omnitron ..."):
            parts = preflight(settings)
        # After the preflight: its mistakes are one line each, without the retries before them.
        with _run_log(settings.log_level, local=api is None), console.status("syncing ..."):
            result = _sync_run(settings, full_refresh, parts, api)
    console.print(
        f"[green]ok[/green] {result['read']:,} read, {result['written']:,} written, "
        f"{result['quarantined']:,} quarantined, {result['flagged']:,} flagged in "
        f"{result['windows']} window(s); watermark {result['watermark_before']} -> "
        f"{result['watermark_after']}",
        highlight=False,
        soft_wrap=True,
    )
    if result.get("unknown_fields"):
        console.print(
            "[yellow]Omnitron sends fields the schema does not know[/yellow] (kept in "
            "_extra_fields): "
            + ", ".join(f"{name} ({n:,} records)" for name, n in result["unknown_fields"].items()),
            highlight=False,
            soft_wrap=True,
        )
    if result.get("data_docs"):
        console.print(f"Data Docs: {result['data_docs']}", highlight=False, soft_wrap=True)


def _sync_run(settings: Settings, full_refresh: bool, parts: RunParts, api: str | None) -> Any:
    """The run's steps: in this process when no Prefect API is configured; otherwise as a flow
    run that the Prefect server records (the same steps, orchestrated by Prefect)."""
    if api is None:
        from omnisync.orchestration import Local
        from omnisync.sync.run import Refused, run_sync

        outcome = run_sync(settings, full_refresh, Local(), parts=parts)
        if isinstance(outcome, Refused):
            raise _skip(outcome.message)
        return outcome
    parts.close()
    from flows.sync_customers import sync_customers
    from omnisync.settings import settings_in_effect

    with settings_in_effect(settings):
        state = cast("State[Any]", sync_customers(full_refresh=full_refresh, return_state=True))
    if state.is_cancelled():
        raise _skip(state.message or "the run was cancelled")
    return state.result()


def _prefect_api() -> str | None:
    """The Prefect API this command reports its runs to, or None to run them in this process;
    raises SettingsError when it does not answer this client.

    Prefect reads its settings from the environment, the active profile, ``prefect.toml`` and
    ``.env``; importing it costs about a second, so it is asked only when one of those could
    name an API."""
    api = os.environ.get("PREFECT_API_URL") or None
    if api is None:
        home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
        places = (home / "profiles.toml", Path("prefect.toml"), Path(".env"))
        if not any(place.is_file() for place in places):
            return None
        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value() or None
    if api is not None:
        from omnisync.prefect_api import check_prefect_api

        check_prefect_api(api)
    return api


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now: rich's status line swaps it while it spins."""

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def _run_log(level: str, local: bool) -> Iterator[None]:
    """The run's own lines (``omnisync.*`` loggers) at ``OMNISYNC_LOG_LEVEL``: on stderr for a
    run in this process; a Prefect run ships them with the run instead."""
    logger = logging.getLogger("omnisync")
    logger.setLevel(level)
    handler = _Stderr()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s - %(message)s", "%H:%M:%S")
    )
    if local:
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _refuse_if_busy(settings: Settings, kind: str) -> None:
    """Before any engine starts: when another run is working on the stream and this one may
    not wait, record the refusal and end at once (exit code 3)."""
    import uuid

    from omnisync.state import StateStore
    from omnisync.sync import STREAM, RunRecord

    store = StateStore(settings.state_url.get_secret_value())
    try:
        store.migrate()
        if store.lease.holder_alive(STREAM) is None:
            return
        busy = store.lease.refusal(STREAM, 0)
        RunRecord.refused(store, uuid.uuid4().hex, STREAM, kind, str(busy))
    finally:
        store.dispose()
    raise busy


@app.command()
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
    """Reconcile Omnitron's erp_codes with the ERP and write the differences back (G7)."""
    with _user_errors():
        from omnisync.settings import load_settings

        if match_on not in MATCH_KEYS:
            raise _fail(f"--match-on must be pk, channel_code, email or phone, got {match_on!r}", 2)
        key = cast("MatchKey", match_on)
        if (erp_file is None) == (erp_query is None):
            raise _fail("give --erp-file, or --erp-query with --erp-url (or OMNISYNC_ERP_URL)", 2)
        mapping = {}
        for item in column:
            name, sep, column_name = item.partition("=")
            if not sep or not name or not column_name:
                raise _fail(f"--column takes FIELD=SOURCE_COLUMN, got {item!r}", 2)
            mapping[name.strip()] = column_name.strip()
        from omnisync.erp.reconcile import parse_limit

        parse_limit(max_changes, 0)  # its syntax, before anything starts
        settings = load_settings(erp_url=erp_url)
        if erp_query and settings.erp_url is None:
            raise _fail("--erp-query needs --erp-url or OMNISYNC_ERP_URL", 2)
        from omnisync.erp import WriteBackFailed

        options: dict[str, Any] = {
            "dry_run": dry_run,
            "max_changes": max_changes,
            "force": force,
            "clear_unknown": clear_unknown,
        }
        api = _prefect_api()
        failure: WriteBackFailed | None = None
        with (
            _run_log(settings.log_level, local=api is None),
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
        ", ".join(f"{n} {k}" for k, n in sorted(summary["outcomes"].items())) or "nothing sent"
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
    console.print(
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
        raise _fail(str(failure), 1)


@app.command()
def status() -> None:
    """Show watermarks and the last runs (syncs and reconciliations) with their outcome."""
    with _user_errors():
        from omnisync.settings import load_settings
        from omnisync.state import StateStore

        settings = load_settings()
        store = StateStore(settings.state_url.get_secret_value())
        store.migrate()
        marks = store.watermarks.all()
        runs = store.runs.recent(limit=10)
        checks = [r for r in store.runs.recent("customers", limit=50) if r["kind"] == "verify"]
    out = Console(highlight=False, soft_wrap=True)
    out.print("[bold]watermarks[/bold]")
    for mark in marks:
        out.print(
            f"  {mark['stream']:<12} {mark['value_iso']}  "
            f"(set by run {shown_run_id(str(mark['run_id']))})"
        )
    if not marks:
        out.print("  none yet: the first run reads the whole history")
    out.print("[bold]last verification[/bold] (omnisync verify)")
    out.print("  " + (_run_lines(checks[0])[0] if checks else "none yet"))
    out.print("[bold]last runs[/bold] (newest first, times in UTC)")
    for run in runs:
        for number, line in enumerate(_run_lines(run)):
            out.print(("  " if number == 0 else "      ") + line)
    if not runs:
        out.print("  none yet")


_OUTCOME_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "refused": "yellow",
    "running": "cyan",
    "interrupted": "red",
    "stopped": "yellow",
}


def shown_run_id(run_id: str) -> str:
    """A run's ID as ``status`` shows it: a sync's random hex cut to 8 characters, which tell runs
    apart; a reconciliation's whole ID, as in its ``reconciliation/<table>/run=<id>`` folders."""
    is_hex = len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)
    return run_id[:8] if is_hex else run_id


def _run_lines(run: dict[str, object]) -> list[str]:
    """One run as a line (when, what, outcome, how long, counts), then its details."""
    import datetime as dt

    counts = json.loads(str(run["counts"] or "{}"))
    started = dt.datetime.fromtimestamp(int(str(run["started_us"])) / 1e6, dt.UTC)
    took = (
        f"{(int(str(run['ended_us'])) - int(str(run['started_us']))) / 1e6:.1f} s"
        if run["ended_us"]
        else "-"
    )
    from omnisync.state.record import outcome_now

    outcome = outcome_now(run)
    style = _OUTCOME_STYLE.get(outcome, "white")
    shown = [
        f"{n:,} {name}"
        for name, n in counts.items()
        if isinstance(n, int) and not isinstance(n, bool) and name != "windows"
    ]
    lines = [
        f"{started:%Y-%m-%d %H:%M:%S}  {run['stream']!s:<13} {run['kind']!s:<11} "
        f"[{style}]{outcome:<11}[/{style}] {took:>8}  run {shown_run_id(str(run['run_id']))}"
        + (f"  {', '.join(shown)}" if shown else "")
    ]
    outcomes = counts.get("outcomes") or {}
    if outcomes:
        lines.append("write-back: " + ", ".join(f"{n:,} {k}" for k, n in sorted(outcomes.items())))
    unknown = counts.get("unknown_fields") or {}
    if unknown:
        lines.append(
            "fields the schema does not know: "
            + ", ".join(f"{name} ({n:,})" for name, n in unknown.items())
        )
    if run["error"] and outcome == "stopped":
        lines.append(f"[yellow]{str(run['error'])[:300]}; nothing was patched[/yellow]")
    elif run["error"]:
        lines.append(f"[red]{str(run['error'])[:300]}[/red]")
    elif outcome == "interrupted":
        lines.append("[red]its process is gone: it was killed before it could record an end[/red]")
    return lines


@app.command()
def verify(
    full: bool = typer.Option(False, "--full", help="compare every customer, not only counts"),
    repair: bool = typer.Option(
        False, "--repair", help="re-read what differs, commit it as a run, then verify again"
    ),
    audit: bool = typer.Option(
        False,
        "--audit",
        help="also compare the next slice of the lake exactly (all of it within "
        "OMNISYNC_VERIFY_AUDIT_RUNS runs)",
    ),
) -> None:
    """Compare customers/ with Omnitron as of the watermark (G9); exit 0 equal, 1 different."""
    with _user_errors():
        from omnisync.settings import load_settings

        settings = load_settings()
        with _run_log(settings.log_level, local=True), console.status("verifying ...") as status:
            from omnisync.verify.checkup import checkup

            def say(line: str, next_step: str) -> None:
                console.print(line, highlight=False, soft_wrap=True, style="yellow")
                status.update(f"{next_step} ...")

            outcome = checkup(settings, full=full, audit=audit, repair=repair, say=say).outcome
    if outcome.equal:
        console.print(f"[green]{outcome.line()}[/green]", highlight=False, soft_wrap=True)
        return
    console.print(f"[red]{outcome.line()}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def sandbox(
    port: int = typer.Option(8000, help="port to listen on (0 picks a free one)"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    customers: int = typer.Option(20_000, min=0, help="seed customers to create"),
    seed: int = typer.Option(7, help="random seed: the same seed gives the same customers"),
    username: str = typer.Option("sandbox", help="user that may log in"),
    password: str = typer.Option("sandbox", help="that user's password"),
    writers: float = typer.Option(0.0, min=0, help="live writer operations per second"),
    delete_share: float = typer.Option(
        0.0, min=0, max=1, help="share of the writers' edits that delete a customer instead"
    ),
    shuffle_ties: bool = typer.Option(False, help="random order among equal sort keys"),
    late_commit: float = typer.Option(
        0.0, min=0, help="writer changes become visible this late (s)"
    ),
    date_only: bool = typer.Option(False, help="reject datetime values in date filters (400)"),
    utc_offset_hours: float = typer.Option(
        0.0, min=-12, max=14, help="the server's time zone: a bare date is midnight there"
    ),
    ignore_sort: bool = typer.Option(False, help="ignore ?sort= and answer newest first"),
    token_max_requests: int | None = typer.Option(
        None, min=1, help="tokens expire after N requests"
    ),
    max_limit: int = typer.Option(1000, min=1, help="server-side cap on ?limit="),
    fault_rate: float = typer.Option(0.0, min=0, max=1, help="share of API requests that fail"),
    lost_answers: float = typer.Option(
        0.0, min=0, max=1, help="share of PATCHes applied, then answered 502, reset or timed out"
    ),
    lost_answer_edits: float = typer.Option(
        0.0, min=0, max=1, help="share of those followed at once by a person's erp_code edit"
    ),
    bulk_update: int = typer.Option(0, min=0, help="at start, give N customers one modified_date"),
) -> None:
    """Run the local Omnitron-compatible sandbox server (for the demo, development and tests)."""
    from sandbox.modes import FaultModes, LostAnswerModes, SandboxModes
    from sandbox.server import serve_forever

    modes = SandboxModes(
        writers_per_second=writers,
        writer_delete_share=delete_share,
        shuffle_ties=shuffle_ties,
        late_commit_seconds=late_commit,
        date_only_filters=date_only,
        utc_offset_hours=utc_offset_hours,
        ignore_sort=ignore_sort,
        token_max_requests=token_max_requests,
        max_limit=max_limit,
        faults=FaultModes(rate=fault_rate),
        lost_answers=LostAnswerModes(rate=lost_answers, edit_share=lost_answer_edits),
    )

    def ready(url: str) -> None:
        console.print(
            f"Omnitron sandbox with {customers:,} customers at [bold]{url}[/bold] "
            f"(log in as {username!r}; admin API under {url}/_sandbox/, docs at "
            f"{url}/_sandbox/docs). Ctrl-C stops it."
        )
        print(url, flush=True)  # on stdout alone, for scripts

    serve_forever(
        customers=customers,
        seed=seed,
        modes=modes,
        port=port,
        host=host,
        on_ready=ready,
        users={username: password},
        bulk_update=bulk_update,
    )


@app.command()
def demo(
    output: Path = typer.Option(
        Path("demo-output"), help="folder for the demo's lake and state (emptied first)"
    ),
    customers: int = typer.Option(20_000, min=1, help="customers in the sandbox"),
) -> None:
    """Run the story on a local sandbox: sync, incremental sync, ERP dry run and write-back."""
    with _user_errors():
        from omnisync.demo import print_summary, run_demo

        report = run_demo(output, customers, console)
    print_summary(report, console)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
