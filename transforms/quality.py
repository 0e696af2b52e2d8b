"""The frame that Great Expectations validates: the typed table, plus derived check columns.

Pure (pyarrow, pandas, phonenumbers via ``transforms.phones``): nothing here touches GX, Prefect
or the network. Derived columns start with ``_`` and exist only for validation; the lake never
stores them.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from transforms.phones import phone_is_valid

ROW = "_row"
# List columns: GX has no expectation for them and pandas would hold them as Python objects.
_NOT_VALIDATED = ("_dq_flags",)


def validation_frame(table: pa.Table) -> pd.DataFrame:
    """A pandas frame for GX: row numbers in ``_row``, dates as datetimes, ``_phone_valid``."""
    keep = [name for name in table.column_names if name not in _NOT_VALIDATED]
    frame = table.select(keep).to_pandas()
    frame[ROW] = range(len(frame))
    if "date_of_birth" in frame:
        frame["date_of_birth"] = pd.to_datetime(frame["date_of_birth"])
    if "channel" in frame and "channel_code" in frame:
        codes = frame["channel_code"]
        key = frame["channel"].astype("string") + "|" + codes.astype("string")
        frame["_channel_key"] = key.where(codes.notna(), None).astype("object")
    if "phone_number" in frame:
        frame["_phone_valid"] = [
            phone_is_valid(v) for v in table.column("phone_number").to_pylist()
        ]
        frame["_phone_valid"] = frame["_phone_valid"].astype("object")
    return frame
