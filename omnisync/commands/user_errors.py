"""The errors a user can act on, each mapped to one line and an exit code: 2 for a mistake to
fix (a setting, an input, a refused plan), 1 for a run that failed, 3 for a run skipped because
another is working, 4 for a plan above ``--max-changes``, 130 for Ctrl-C and 143 for SIGTERM
(which takes Ctrl-C's path: ``omnisync/stopping.py``); never a traceback.

Each error class is looked up only if its module is loaded, so a command that fails on a
setting does not import the sync's or the lake's code to name it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer
from rich.markup import escape

from omnisync.commands.terminal import console, fail, skip
from omnisync.stopping import Terminated, sigterm_stops

#: what Ctrl-C leaves, for a command that changes nothing
NOTHING_CHANGED = "nothing was changed"


@contextlib.contextmanager
def user_errors(stopped: str = NOTHING_CHANGED) -> Iterator[None]:
    """Turn the errors a user can act on into one line and an exit code; never a traceback.
    ``stopped``: what Ctrl-C leaves behind and what to do next, said when it stops the command
    (exit 130, as a shell reports SIGINT; SIGTERM the same, exit 143): without a word, a user
    at a terminal could not tell an interrupted run from one that ended."""
    from omnisync.settings import SettingsError

    try:
        with sigterm_stops():
            yield
    except KeyboardInterrupt as exc:
        by, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
        console.print(
            f"[yellow]stopped[/yellow] by {by}: {escape(stopped)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code) from None
    except SettingsError as exc:
        raise fail(str(exc), 2) from None
    except Exception as exc:
        client = "omnisync.client.errors"
        state = "omnisync.state.errors"
        erp = "omnisync.erp.refusal"
        if isinstance(
            exc,
            (
                _loaded(client, "ConfigurationError"),
                _loaded(client, "AuthenticationFailed"),
                _loaded("omnisync.lake.errors", "LakeError"),
            ),
        ):
            raise fail(str(exc), 2) from None
        if isinstance(exc, _loaded(state, "LockHeld")):
            raise skip(str(exc)) from None
        if isinstance(exc, (_loaded(state, "LockLost"), _loaded(state, "LockUnproven"))):
            raise fail(str(exc), 1) from None  # at run time: not a setting to fix
        if isinstance(exc, _loaded(state, "StateError")):
            raise fail(str(exc), 2) from None
        if isinstance(exc, _loaded("omnisync.sync.mass_deletion", "MassDeletionRefused")):
            raise fail(str(exc), 1) from None
        if isinstance(exc, _loaded(client, "OmnitronError")):
            raise fail(f"Omnitron: {exc}", 1) from None
        rejected = (
            _loaded("omnisync.sync.window", "BatchRejected"),
            _loaded("transforms.customers", "SchemaDrift"),
        )
        if isinstance(exc, rejected):
            raise fail(f"the batch was rejected, watermark unchanged: {exc}", 1) from None
        refused = (_loaded("omnisync.erp.source", "ErpInputError"), _loaded(erp, "PlanRejected"))
        if isinstance(exc, refused):
            raise fail(f"{exc}; nothing was patched", 2) from None
        if isinstance(exc, _loaded(erp, "PlanTooLarge")):
            raise fail(str(exc), 4) from None
        raise


def _loaded(module: str, name: str) -> type[BaseException]:
    """An exception class of ``module`` if that module is loaded, else one nothing raises: an
    error of a module that was never imported cannot have happened, and a command that fails
    on a setting does not pay for importing the sync's or the lake's code to name it."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else _NeverRaised


class _NeverRaised(Exception):
    pass
