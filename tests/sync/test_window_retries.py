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
