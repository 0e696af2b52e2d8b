"""Steps ``prefect.yaml`` runs around the flows: at ``prefect deploy`` (build) and before each
run on a worker (pull).

Every deployment runs from the omnisync checkout named by ``OMNISYNC_HOME``. Without it a run
would start in the worker's temporary folder and crash there, far from the cause; this step
stops the deploy, and any run whose worker lacks it, with one line that says what to set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENTRYPOINT = Path("flows") / "sync_customers.py"


class HomeMissing(Exception):
    """``OMNISYNC_HOME`` is unset, or names no omnisync checkout."""


def require_home(directory: str | None = None) -> dict[str, str]:
    """Check that ``directory`` (``{{ $OMNISYNC_HOME }}``) is an omnisync checkout."""
    if not directory or directory.startswith("{{"):
        raise HomeMissing(
            "OMNISYNC_HOME is not set: deploy from the omnisync checkout that the worker runs "
            "from with `OMNISYNC_HOME=$PWD prefect deploy --all`"
        )
    home = Path(directory).expanduser()
    if not (home / ENTRYPOINT).is_file():
        raise HomeMissing(
            f"OMNISYNC_HOME={directory} is not an omnisync checkout (no {ENTRYPOINT} there)"
        )
    return {"directory": str(home.resolve())}


def require_home_to_deploy(directory: str | None = None) -> dict[str, str]:
    """The build step: stop ``prefect deploy`` with one line when ``OMNISYNC_HOME`` is wrong.

    Prefect prints the whole traceback of a failing build step (about 40 lines) before the
    reason; the deployer needs only the reason. Nothing has been registered at this point."""
    try:
        return require_home(directory)
    except HomeMissing as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.stderr.flush()
        os._exit(2)
