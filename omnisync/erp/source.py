"""Reading the ERP's customer list: a CSV or Parquet file, or a SQL query on any SQLAlchemy URL.

Columns are named like Omnitron's fields (``erp_code``, ``pk``, ``channel``, ``channel_code``,
``email``, ``phone_number``) unless ``columns`` maps them (``{"erp_code": "ACCOUNT_NO"}``).
Anything wrong with the input raises ``ErpInputError`` with one line naming the problem.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from omnisync.state.store import sqlite_file
from omnisync.url_credentials import database_url_shown, without_url_pieces
from transforms.erp.tables import KEY_COLUMNS, MatchKey


class ErpInputError(Exception):
    """The ERP input cannot be used; nothing was patched."""


def _needed(match_on: MatchKey) -> list[str]:
    return ["erp_code", *KEY_COLUMNS[match_on]]


def _as_strings(table: pa.Table) -> pa.Table:
    """Every column as text: the ERP's types vary, matching works on normalised strings."""
    return pa.table({name: table.column(name).cast(pa.string()) for name in table.column_names})


def _select(
    table: pa.Table, match_on: MatchKey, columns: Mapping[str, str], where: str
) -> pa.Table:
    names = table.column_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ErpInputError(f"{where}: duplicate column header(s) {duplicates}")
    picked = {}
    for field in _needed(match_on):
        source = columns.get(field, field)
        if source not in names:
            hint = f" (mapped from {field})" if source != field else ""
            raise ErpInputError(
                f"{where}: column {source!r}{hint} is missing; columns are {names}"
                + _missing_hint(names, match_on, columns)
            )
        picked[field] = table.column(source)
    if table.num_rows == 0:
        raise ErpInputError(f"{where} has no rows: there is nothing to reconcile")
    return _as_strings(pa.table(picked))


def _missing_hint(names: list[str], match_on: MatchKey, columns: Mapping[str, str]) -> str:
    """What the common shapes of a header that lacks a column mean: another separator (a
    spreadsheet's ``;``), or the columns in other letters (``ERP_CODE``)."""
    if len(names) == 1:
        for separator in (";", "\t", "|"):
            if separator in names[0]:
                shown = "tab" if separator == "\t" else repr(separator)
                return f": the file seems separated by {shown}; save it as CSV with commas"
    by_letters = {name.lower(): name for name in names}
    mapped = [
        f"--column {field}={by_letters[field.lower()]}"
        for field in _needed(match_on)
        if field not in columns and field not in names and field.lower() in by_letters
    ]
    return f": map them with {' '.join(sorted(mapped))}" if mapped else ""


def read_file(path: Path, match_on: MatchKey, columns: Mapping[str, str] | None = None) -> pa.Table:
    columns = columns or {}
    where = f"ERP file {path}"
    not_utf8 = f"{where} is not UTF-8 text: save it as UTF-8 CSV, or as Parquet"
    try:
        with path.open("rb") as raw:
            if raw.read(16) == b"SQLite format 3\x00":
                raise ErpInputError(
                    f"{where} is a SQLite database, not CSV or Parquet: read it with "
                    f"--erp-url sqlite:///{path.resolve()} and --erp-query"
                )
        if path.suffix.lower() == ".parquet":
            with pq.ParquetFile(path) as file:  # not read_table: see LakeStorage.parquet_file
                table = file.read()
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                header = next(csv.reader(handle), None)
            if not header:
                raise ErpInputError(f"{where}: the file is empty")
            if len(set(header)) != len(header):
                dups = sorted({h for h in header if header.count(h) > 1})
                raise ErpInputError(f"{where}: duplicate column header(s) {dups}")
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
                ),
            )
    except ErpInputError:
        raise
    except UnicodeDecodeError:
        raise ErpInputError(not_utf8) from None
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc):  # Arrow's word for a CSV value that is not UTF-8
            raise ErpInputError(not_utf8) from None
        raise ErpInputError(f"{where} cannot be read: {str(exc).splitlines()[0]}") from None
    except (OSError, pa.ArrowException) as exc:
        raise ErpInputError(f"{where} cannot be read: {str(exc).splitlines()[0]}") from None
    return _select(table, match_on, columns, where)


def read_query(
    url: str, query: str, match_on: MatchKey, columns: Mapping[str, str] | None = None
) -> pa.Table:
    """Run ``query`` (given by the operator; no values are interpolated) and fetch the rows."""
    where = f"ERP query on {database_url_shown(url)}"
    options = _sqlite_read_only(url, where)
    connected = False
    try:
        engine = create_engine(url, **options)
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":  # SQLite opens any file: is it a database?
                connection.exec_driver_sql("PRAGMA schema_version")
            connected = True
            result = connection.execute(text(query))
            names = list(result.keys())
            rows = result.fetchall()
        engine.dispose()
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        reason = without_url_pieces(message, url)
        if not connected:  # a login, a host or a driver: the URL's to fix, not the query
            raise ErpInputError(
                f"cannot reach the ERP database {database_url_shown(url)} (the ERP's URL: "
                f"--erp-url, OMNISYNC_ERP_URL, or the flow's erp_url_secret): {reason}"
            ) from None
        raise ErpInputError(f"{where} failed: {reason}") from None
    if len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise ErpInputError(f"{where}: duplicate column name(s) {dups}")
    data = {
        name: pa.array([None if r[i] is None else str(r[i]) for r in rows], pa.string())
        for i, name in enumerate(names)
    }
    return _select(pa.table(data) if data else pa.table({}), match_on, columns or {}, where)


def _sqlite_read_only(url: str, where: str) -> dict[str, Any]:
    """``create_engine`` options for an ERP in SQLite: opened read-only, so that a mistyped path
    makes no empty file (and is named here, not blamed on a table) and a query writes nothing.
    A URI filename (``?uri=true``) says for itself how it is opened."""
    path = sqlite_file(url)
    if path is None:
        return {}
    if not path.exists():
        raise ErpInputError(f"{where}: no SQLite database at {path.resolve()} (a typo?)")
    import sqlite3

    location = path.resolve().as_uri() + "?mode=ro"
    return {"creator": lambda: sqlite3.connect(location, uri=True, check_same_thread=False)}


@dataclasses.dataclass
class ErpSource:
    file: Path | None = None
    url: str | None = None
    query: str | None = None
    columns: dict[str, str] = dataclasses.field(default_factory=dict)

    def read(self, match_on: MatchKey) -> pa.Table:
        if self.file is not None:
            return read_file(self.file, match_on, self.columns)
        if self.url and self.query:
            return read_query(self.url, self.query, match_on, self.columns)
        raise ErpInputError("give --erp-file, or --erp-url with --erp-query")
