"""``omnisync verify``: customers/ compared with Omnitron as of the watermark (G9)."""

from __future__ import annotations

import typer

from omnisync.commands.terminal import console, fail, results, run_log
from omnisync.commands.user_errors import user_errors


def verify(
    full: bool = typer.Option(
        False,
        "--full",
        help="compare every customer, not only counts; read every column of every file",
    ),
    repair: bool = typer.Option(
        False, "--repair", help="re-read what differs, commit it as a run, then verify again"
    ),
    audit: bool = typer.Option(
        False,
        "--audit",
        help="also compare the next slice of the lake exactly (all of it within "
        "OMNISYNC_VERIFY_AUDIT_RUNS runs); read every column of every file",
    ),
) -> None:
    """Compare customers/ with Omnitron as of the watermark; exit 0 equal, 1 different."""
    out = results()  # the verdicts; progress and log lines go to stderr
    with user_errors(
        stopped="no verdict; a repair already committed stays (run `omnisync verify --repair` "
        "again)"
        if repair
        else "no verdict, and nothing was changed"
    ):
        if full and audit:
            raise fail("--full compares every customer already: give only one of them", 2)
        from omnisync.settings import load_settings

        settings = load_settings()
        with run_log(settings.log_level, local=True), console.status("verifying ...") as status:
            from omnisync.verify.checkup import checkup

            def say(line: str, next_step: str) -> None:
                out.print(line, style="yellow")
                status.update(f"{next_step} ...")

            outcome = checkup(settings, full=full, audit=audit, repair=repair, say=say).outcome
    if outcome.equal:
        out.print(outcome.line(), style="green")
        return
    out.print(outcome.line(), style="red")
    if not repair:  # what to do about it (a new user looked for it); stdout keeps the verdict
        console.print(
            "to read what differs from Omnitron again and commit it: omnisync verify --repair"
            + (" --full" if outcome.unreadable and not full else ""),
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(1)
