"""Which failures of a window are worth running it again: what may pass, not what stays."""

from __future__ import annotations

import errno

import pyarrow as pa
import pytest

from omnisync.client import AuthenticationFailed, ConfigurationError, RetriesExhausted
from omnisync.lake.errors import LakeDamaged, LakeError
from omnisync.sync.window import _worth_retrying


@pytest.mark.parametrize(
    ("error", "again"),
    [
        (LakeDamaged("customer_changes/x.parquet", "lake/x.parquet", "bad footer"), False),
        (LakeError("the lake's customers/ has 4 buckets"), False),
        (AuthenticationFailed("login refused"), False),
        (ConfigurationError("certificate cannot be verified", unsent=True), False),
        (OSError(errno.EIO, "input/output error"), True),  # an object store's hiccup
        (OSError(errno.EBUSY, "the object changed while it was read"), True),
        (TimeoutError("read timed out"), True),
        (RetriesExhausted("503 five times"), True),
        (pa.ArrowMemoryError("malloc failed"), True),
    ],
)
def test_a_window_is_run_again_only_after_a_failure_that_may_pass(
    error: Exception, again: bool
) -> None:
    assert _worth_retrying(error) is again


def test_ctrl_c_in_a_window_stops_the_run_instead_of_running_the_window_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: Ctrl-C during a one-window sync (the window runs on the main thread,
    where the signal lands) was logged as "window failed, running it again:" with nothing after
    the colon, and the window read again from its start: stamina hands every exception to the
    retry predicate, KeyboardInterrupt included."""
    from omnisync.sync import window

    calls = []

    def interrupted(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(window, "sync_window", interrupted)
    with pytest.raises(KeyboardInterrupt):
        window.sync_window_retrying(None, "plan", None, None)  # type: ignore[arg-type]
    assert len(calls) == 1, "run once, not again"
    assert window._worth_retrying(KeyboardInterrupt()) is False
    assert window._worth_retrying(SystemExit(1)) is False
