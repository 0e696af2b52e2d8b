"""``omnisync sync``: one run of the customer sync, in this process or as a Prefect flow run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import typer

from omnisync.commands.terminal import console, results, run_log, skip, sync_counts
from omnisync.commands.user_errors import user_errors
from omnisync.lasting_imports import lasting_imports

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from omnisync.settings import Settings
    from omnisync.sync import RunContext


def sync(
    full_refresh: bool = typer.Option(False, "--full-refresh", help="re-read the whole history"),
) -> None:
    """Run the customer sync once: incremental from the watermark, or a full refresh."""
    out = results()
    with user_errors(
        stopped="what it finished is kept (a window's new versions are in customer_changes/ at "
        "once, its rows in customers/ when its plan is done); the next `omnisync sync` goes on "
        "from there"
    ):
        from omnisync.settings import load_settings

        with lasting_imports():  # its checks import SQLAlchemy and pyarrow
            settings = load_settings()  # before the sync's imports: a mistake answers at once
            from omnisync.connection import open_client
            from omnisync.lake import LakeStorage
            from omnisync.prefect_api import configured_prefect_api
            from omnisync.sync import preflight

        # It sends nothing: the URL and credentials are refused before anything is made here.
        open_client(settings).close()

        api = configured_prefect_api()
        if settings.dask_address and api is None:
            console.print(
                "[yellow]note:[/yellow] OMNISYNC_DASK_ADDRESS applies to Prefect runs (with "
                "PREFECT_API_URL set); this run extracts its windows in this process "
                "(OMNISYNC_WINDOW_CONCURRENCY)",
                highlight=False,
                soft_wrap=True,
            )
        # a mistyped lake path is refused before the state database is made or asked
        LakeStorage(settings.lake).check_parent()
        if settings.lock_wait_seconds == 0:
            _refuse_if_busy(settings, "full" if full_refresh else "incremental")
        with contextlib.ExitStack() as opened:
            with console.status("checking the lake, the state database and Omnitron ..."):
                context = opened.enter_context(preflight(settings))
            # After the preflight: its mistakes are one line each, without the retries before.
            with (
                run_log(settings.log_level, local=api is None),
                console.status("syncing ...") as status,
            ):
                # each window's end moves the status line: where a backfill is, and its pace
                show = (
                    status.update
                    if console.is_terminal
                    else _lines_now_and_then(settings.log_level in ("DEBUG", "INFO"))
                )
                result = _sync_run(settings, full_refresh, context, api, show)
    out.print(
        f"[green]ok[/green] {sync_counts(result)} in "
        f"{result['windows']} window(s)"
        # "0 new or changed" alone read as nothing done (a new user's full refresh after damage)
        f"{'; customers/ rebuilt from what they read' if result.get('rebuilt') else ''}"
        f"{_resumed(result)}"
        f"; watermark {_as_status(result['watermark_before'])} -> "
        f"{_as_status(result['watermark_after'])}",
        highlight=False,
        soft_wrap=True,
    )
    if result["watermark_after"] == result["watermark_before"] and settings.lag_seconds > 0:
        # A change made a moment ago is not in this run's range yet: without a word, a run that
        # reads nothing new looks like a sync that missed it.
        console.print(
            f"[dim]note:[/dim] read up to {result['upper_bound']} (Omnitron's clock minus "
            f"OMNISYNC_LAG_SECONDS={settings.lag_seconds:g}); later changes are read by the "
            "next run",
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
        out.print(f"Data Docs: {result['data_docs']}")


def _resumed(result: dict[str, Any]) -> str:
    """What the summary's counts hold of an earlier run's: a plan this run finished counts the
    windows an earlier run read of it too (a new user took the whole plan's for this run's)."""
    if not result.get("resumed_plan"):
        return ""
    windows, read = result.get("windows_before", 0), result.get("read_before", 0)
    if not windows:
        return ", finishing the plan an earlier run left"
    return (
        f", finishing the plan an earlier run left (with its {windows} window(s) and "
        f"{read:,} read before this run)"
    )


def _sync_run(
    settings: Settings,
    full_refresh: bool,
    context: RunContext,
    api: str | None,
    show: Callable[[str], None],
) -> Any:
    """The run's steps: in this process when no Prefect API is configured; otherwise as a flow
    run that the Prefect server records (the same steps, orchestrated by Prefect), which takes
    the preflight's context (the command closes it when the run ends). ``show``: a line
    saying how far the run is, as it moves (a terminal run's)."""
    if api is None:
        from omnisync.orchestration import Local
        from omnisync.sync.run import Refused, run_sync

        local = Local(on_progress=lambda line, done: show(_said(line)))
        outcome = run_sync(settings, full_refresh, local, context=context)
        if isinstance(outcome, Refused):
            raise skip(outcome.message)
        return outcome
    from flows.sync_customers import sync_customers
    from omnisync.settings import settings_in_effect
    from omnisync.sync.context import handed_over

    # the flow run takes the preflight's context: it need not log in and count again
    with handed_over(context), settings_in_effect(settings):
        state = cast("State[Any]", sync_customers(full_refresh=full_refresh, return_state=True))
    if state.is_cancelled():
        raise skip(state.message or "the run was cancelled")
    return state.result()


#: seconds between two progress lines written where no status line can be (a log, a pipe)
LINE_EVERY = 10.0


def _lines_now_and_then(logged: bool = False) -> Callable[[str], None]:
    """Progress as plain lines on standard error, at most one each :data:`LINE_EVERY` seconds:
    a sync whose output goes to a log or a pipe said nothing until its end (a new user waited
    25 s), and a short run still says nothing more than its result. None when the run's log
    lines say it (``logged``: ``OMNISYNC_LOG_LEVEL`` INFO or DEBUG), which would double them."""
    import time

    said = [time.monotonic()]

    def show(line: str) -> None:
        now = time.monotonic()
        if not logged and now - said[0] >= LINE_EVERY:
            said[0] = now
            console.print(line, highlight=False, soft_wrap=True)

    return show


def _said(line: str) -> str:
    """A progress line as the status line says it: ``syncing: windows 3 of 25 (12%), ...``."""
    from omnisync.orchestration import RESUMED_WINDOWS, WINDOWS

    key, _, rest = line.partition(": ")
    label = {
        WINDOWS: "syncing: windows",
        RESUMED_WINDOWS: "finishing the plan an earlier run left: windows",
    }
    return f"{label[key]} {rest}" if key in label else f"syncing: {line}"


def _as_status(watermark: str | None) -> str:
    """A watermark as ``status`` and ``verify`` write it (UTC as ``Z``), or ``none``."""
    return watermark.replace("+00:00", "Z") if watermark else "none"


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
