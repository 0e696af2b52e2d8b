"""The ``omnisync`` command line (its commands: README.md, in full docs/operations.md).

A user's mistake ends with a one-line message naming what to fix and exit code 2, never a traceback.
The sandbox is imported only inside the commands that run it: production paths never load it.
Each command lives in ``omnisync.commands``; this module assembles them into the app that
``pyproject.toml`` names as the console script.
"""

from __future__ import annotations

import os

import typer

from omnisync.commands.reconcile import reconcile
from omnisync.commands.sandbox import demo, sandbox
from omnisync.commands.status import status
from omnisync.commands.sync import sync
from omnisync.commands.verify import verify

app = typer.Typer(
    name="omnisync",
    help="Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Before Prefect is imported: no telemetry from an offline scheduler host.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The library logs through stdlib loggers named omnisync.*: let Prefect ship them with the run.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "omnisync")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # preflight runs first


@app.callback()
def _root() -> None:
    """Sync Akinon Omnitron customers into a Parquet lake, and ERP codes back into Omnitron."""
    from omnisync.lasting_imports import lasting_imports

    # What every command imports first (the settings and their checks: pydantic, SQLAlchemy,
    # pyarrow) lasts as long as the process: imported without the cycle collector's passes.
    with lasting_imports():
        import stamina.instrumentation

        # The client logs each retry itself, naming the host and the reason; stamina's own lines
        # (``stamina.retry_scheduled``) would only repeat them without that context.
        stamina.instrumentation.set_on_retry_hooks([])
        _refuse_unreadable_dotenv()
        _note_misspelled_settings()


def _refuse_unreadable_dotenv() -> None:
    """A ``.env`` line that is not ``NAME=value`` sets nothing (python-dotenv warns without
    naming the file, and the command then fails on what the line was meant to set): name it."""
    from pathlib import Path

    from dotenv.parser import parse_stream

    from omnisync.commands.terminal import fail
    from omnisync.settings_checks import setting_names

    dotenv = Path(".env")
    if not dotenv.is_file():
        return
    with dotenv.open(encoding="utf-8", errors="replace") as lines:
        for binding in parse_stream(lines):
            if binding.error:
                # The line is not shown: it may hold a secret. Only a setting's name is.
                first = (binding.original.string.split() or [""])[0]
                named = f" (it starts with {first})" if first in setting_names() else ""
                raise fail(
                    f".env line {binding.original.line} is not NAME=value{named} "
                    f"(in {dotenv.resolve().parent})",
                    2,
                )


def _note_misspelled_settings() -> None:
    """A mistyped setting is ignored by the settings: a name taken for one whose setting is not
    set stops the command (it would run on that setting's default: a lake written under ./lake,
    say, and exit 0); any other unknown name is noted, naming the setting meant."""
    from pathlib import Path

    from omnisync.commands.terminal import console, fail
    from omnisync.settings_checks import misspelled_settings, names_set

    dotenv = Path(".env")
    given = names_set(os.environ.keys(), dotenv)
    for name, meant in misspelled_settings(given):
        # omnisync's own prefix only: an OMNITRON_* name may be another tool's
        if meant and name.startswith("OMNISYNC_") and not given & set(meant.split(" or ")):
            raise fail(
                f"{name} is not a setting (did you mean {meant}?), and {meant} is not set: "
                "rename it, or remove it",
                2,
            )
        hint = f"did you mean {meant}?" if meant else "the settings are in docs/settings.md"
        console.print(
            f"[yellow]note:[/yellow] {name} is not a setting and is ignored ({hint})",
            highlight=False,
            soft_wrap=True,
        )


for command in (sync, reconcile, status, verify, sandbox, demo):
    app.command()(command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
