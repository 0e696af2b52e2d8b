"""The frame that Great Expectations validates: the typed table, plus derived check columns.

Pure (pyarrow, pandas, phonenumbers via ``transforms.phones``): nothing here touches GX, Prefect
or the network. Derived columns start with ``_`` and exist only for validation; the lake never
stores them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from transforms.phones import phones_are_valid

ROW = "_row"
# List columns: GX has no expectation for them and pandas would hold them as Python objects.
_NOT_VALIDATED = ("_dq_flags",)
# What datetime64[ns] holds, in whole days. A date outside it is checked as this bound, which
# is on the same side of any date a suite compares with (today, a plausible birth year).
_NS_DAYS = (
    pa.scalar(dt.date(1678, 1, 1), pa.date32()),
    pa.scalar(dt.date(2262, 1, 1), pa.date32()),
)


def _nanosecond_dates(dates: pa.ChunkedArray) -> pd.Series:
    """Dates as datetime64[ns]: GX compares those column-wide, and every other unit (pandas 3
    makes date32 a datetime64[s]) one row at a time in Python, at a cost on every row."""
    low, high = _NS_DAYS
    clipped = pc.max_element_wise(
        pc.min_element_wise(dates, high, skip_nulls=False), low, skip_nulls=False
    )
    return pd.Series(clipped.cast(pa.timestamp("ns")).to_numpy(), dtype="datetime64[ns]")


def validation_frame(table: pa.Table, checked: Collection[str] | None = None) -> pd.DataFrame:
    """A pandas frame for GX: row numbers in ``_row``, dates as datetimes, ``_phone_valid``.

    ``checked``: the columns whose values a suite reads (None: all). Every other column is a
    one-byte placeholder of the same name, never converted: as Python objects, the text columns
    that no expectation reads would be about half of the frame's memory."""

    def wanted(name: str) -> bool:
        return checked is None or name in checked

    keep = [name for name in table.column_names if name not in _NOT_VALIDATED]
    frame = table.select([name for name in keep if wanted(name)]).to_pandas()
    frame[ROW] = range(len(frame))
    if "date_of_birth" in frame:
        dates = table.column("date_of_birth")
        frame["date_of_birth"] = (
            _nanosecond_dates(dates)
            if pa.types.is_date(dates.type)
            else pd.to_datetime(frame["date_of_birth"])  # a typing defect, judged by the suite
        )
    names = table.column_names
    if "channel" in names and "channel_code" in names and wanted("_channel_key"):
        key = pc.binary_join_element_wise(
            table.column("channel").cast(pa.string()),
            table.column("channel_code").cast(pa.string()),
            "|",
        )
        frame["_channel_key"] = pd.Series(key.to_pylist(), dtype="object")
    if "phone_number" in table.column_names and wanted("_phone_valid"):
        frame["_phone_valid"] = phones_valid(table.column("phone_number"))
    for name in keep:
        if name not in frame:
            frame[name] = _placeholder(len(frame))
    return frame[[*keep, *(name for name in frame.columns if name not in keep)]]


def _placeholder(rows: int) -> np.ndarray:
    """What stands for a column no expectation reads: GX only needs its name."""
    return np.zeros(rows, dtype=np.bool_)


def only_checked(frame: pd.DataFrame, checked: Collection[str] | None) -> pd.DataFrame:
    """``frame`` with every column no expectation reads (not in ``checked``; None: every column
    is read) a one-byte placeholder of the same name, in the same order. GX filters and hashes
    the whole frame for every expectation: carrying the text columns nobody checks cost most of
    validation's time. A frame :func:`validation_frame` built slim comes back as it is, uncopied
    (its placeholders, like any boolean column, are one byte a row already)."""
    if checked is None:
        return frame
    unchecked = [n for n in frame.columns if n not in checked and frame[n].dtype != np.bool_]
    if not unchecked:
        return frame
    return frame.assign(**{str(name): _placeholder(len(frame)) for name in unchecked})


def phones_valid(phones: pa.ChunkedArray) -> pd.Series:
    """Whether each phone number is valid (None where there is none), each distinct number
    checked once. Per batch, not a cache across batches: a backfill's numbers are nearly all
    distinct, and a cache kept for the whole run only held memory (and pinned the heap pages
    around each window's garbage)."""
    encoded = phones.combine_chunks().dictionary_encode()
    valid = phones_are_valid(encoded.dictionary).take(encoded.indices)
    return pd.Series(valid.to_pylist(), dtype="object")
