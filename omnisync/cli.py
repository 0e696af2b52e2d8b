"""The ``omnisync`` command line (SPEC 3.2).

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


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line and an exit code; never a traceback."""
    from omnisync.client import AuthenticationFailed, ConfigurationError, OmnitronError
    from omnisync.lake import LakeError
    from omnisync.settings import SettingsError
    from omnisync.state import LockHeld, LockLost, StateError
    from omnisync.sync import BatchRejected
    from transforms.customers import SchemaDrift

    try:
        yield
    except (SettingsError, ConfigurationError, AuthenticationFailed, LakeError) as exc:
        raise _fail(str(exc), 2) from None
    except LockHeld as exc:
        raise _fail(str(exc), 3) from None
    except LockLost as exc:
        raise _fail(str(exc), 1) from None
    except StateError as exc:
        raise _fail(str(exc), 2) from None
    except OmnitronError as exc:
        raise _fail(f"Omnitron: {exc}", 1) from None
    except (BatchRejected, SchemaDrift) as exc:
        raise _fail(f"the batch was rejected, watermark unchanged: {exc}", 1) from None
    except Exception as exc:
        # ERP errors can only come from a command that loaded omnisync.erp; a sync does not
        # pay for importing it (half a second) just to name its exceptions here.
        erp = sys.modules.get("omnisync.erp")
        if erp is not None and isinstance(exc, (erp.ErpInputError, erp.PlanRejected)):
            raise _fail(f"{exc}; nothing was patched", 2) from None
        if erp is not None and isinstance(exc, erp.PlanTooLarge):
            raise _fail(str(exc), 4) from None
        raise


@app.command()
def sync(
    full_refresh: bool = typer.Option(False, "--full-refresh", help="re-read the whole history"),
) -> None:
    """Run the customer sync once: incremental from the watermark, or a full refresh."""
    with _user_errors():
        from omnisync.settings import load_settings
        from omnisync.sync import preflight

        settings = load_settings()
        api = _prefect_api()
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
            raise _fail(outcome.message, 3)
        return outcome
    parts.close()
    from flows.sync_customers import sync_customers
    from omnisync.settings import settings_in_effect

    with settings_in_effect(settings):
        state = cast("State[Any]", sync_customers(full_refresh=full_refresh, return_state=True))
    if state.is_cancelled():
        raise _fail(state.message or "the run was cancelled", 3)
    return state.result()


def _prefect_api() -> str | None:
    """The Prefect API this command reports its runs to, or None to run them in this process.

    Prefect reads its settings from the environment, the active profile, ``prefect.toml`` and
    ``.env``; importing it costs about a second, so it is asked only when one of those could
    name an API."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    places = (home / "profiles.toml", Path("prefect.toml"), Path(".env"))
    if not any(place.is_file() for place in places):
        return None
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


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
        if store.holder_alive(STREAM) is None:
            return
        busy = store.refusal(STREAM, 0)
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
                    from omnisync.orchestration import progress_line

                    local = Local(
                        on_progress=lambda what, done, total: status.update(
                            progress_line(what, done, total)
                        )
                    )
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
    rows = " + ".join(
        f"{n:,} {name.replace('_', ' ')}" for name, n in summary["erp_row_outcomes"].items()
    )
    console.print(
        f"{'[yellow]dry run[/yellow]' if dry_run else '[green]done[/green]'}: "
        f"{summary['erp_rows']:,} ERP rows = {rows}; {summary['planned']:,} changes planned, "
        f"{summary['conflicts']:,} conflicts, {summary['unknown_in_erp']:,} Omnitron codes "
        f"unknown to the ERP; write-back: {outcomes}\n"
        f"report: {summary['report']} (erp_rows.parquet says what became of each ERP row); "
        f"for people: {summary['summary']} and a CSV per outcome beside it",
        highlight=False,
        soft_wrap=True,
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
        marks = store.all_watermarks()
        runs = store.recent_runs(limit=10)
    out = Console(highlight=False, soft_wrap=True)
    out.print("[bold]watermarks[/bold]")
    for mark in marks:
        out.print(f"  {mark['stream']:<12} {mark['value_iso']}  (set by run {mark['run_id'][:8]})")
    if not marks:
        out.print("  none yet: the first run reads the whole history")
    out.print("[bold]last runs[/bold] (newest first, times in UTC)")
    for run in runs:
        for number, line in enumerate(_run_lines(run)):
            out.print(("  " if number == 0 else "      ") + line)
    if not runs:
        out.print("  none yet")


_OUTCOME_STYLE = {"succeeded": "green", "failed": "red", "refused": "yellow", "running": "cyan"}


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
    outcome = str(run["status"])
    style = _OUTCOME_STYLE.get(outcome, "white")
    shown = [
        f"{n:,} {name}"
        for name, n in counts.items()
        if isinstance(n, int) and not isinstance(n, bool) and name != "windows"
    ]
    lines = [
        f"{started:%Y-%m-%d %H:%M:%S}  {run['stream']!s:<13} {run['kind']!s:<11} "
        f"[{style}]{outcome:<9}[/{style}] {took:>8}  run {str(run['run_id'])[:8]}"
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
    if run["error"]:
        lines.append(f"[red]{str(run['error'])[:300]}[/red]")
    return lines


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
    bulk_update: int = typer.Option(0, min=0, help="at start, give N customers one modified_date"),
) -> None:
    """Run the local Omnitron-compatible sandbox server (for the demo, development and tests)."""
    from sandbox.modes import FaultModes, SandboxModes
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
