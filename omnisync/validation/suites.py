"""Expectation suites as reviewable JSON, and what one suite said about one batch.

Reading a suite is kept apart from running it (``runner``): a missing or invalid suite is a
deployment problem (:class:`SuiteError`), never a data problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROW = "_row"
DEFAULT_SUITES = Path(__file__).resolve().parents[2] / "expectations"


class SuiteError(Exception):
    """A suite file is missing or invalid: a deployment problem, not a data problem."""


@dataclass
class SuiteResult:
    """What one suite said about one batch."""

    suite: str
    row_failures: dict[str, tuple[str, list[int]]] = field(
        default_factory=dict
    )  # name -> (severity, rows)
    batch_failures: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (name, severity, detail)
    docs_index: str | None = None

    @property
    def critical(self) -> list[str]:
        return [
            f"{name}: {detail}"
            for name, severity, detail in self.batch_failures
            if severity == "critical"
        ]

    @property
    def warnings(self) -> list[str]:
        rows = [
            f"{name}: {len(found)} row(s)"
            for name, (severity, found) in self.row_failures.items()
            if severity != "critical"
        ]
        return rows + [
            f"{name}: {detail}"
            for name, severity, detail in self.batch_failures
            if severity != "critical"
        ]


def load_suite_json(name: str, directory: Path = DEFAULT_SUITES) -> dict[str, Any]:
    path = directory / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"expectation suite {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from None
    for expectation in data.get("expectations", []):
        if not expectation.get("meta", {}).get("name"):
            raise SuiteError(
                f"{path}: every expectation needs meta.name ({expectation.get('type')})"
            )
    return data


#: expectation arguments that name the columns an expectation reads
_COLUMN_ARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_ARGS = ("column_list",)
#: expectations that read only the table's column names, not their values
_NAMES_ONLY = {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"}


def checked_columns(suite: dict[str, Any]) -> set[str] | None:
    """The columns whose values the suite reads; None when that cannot be told (then every
    column is validated as it is)."""
    columns: set[str] = {ROW}
    for expectation in suite.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        kind = expectation.get("type", "")
        if kind in _NAMES_ONLY:
            continue
        named = [kwargs[a] for a in _COLUMN_ARGS if a in kwargs]
        named += [c for a in _COLUMN_LIST_ARGS for c in kwargs.get(a, [])]
        if not named:
            if kind.startswith("expect_table_row_count"):
                continue
            return None  # an expectation over the whole table: keep every column's values
        columns.update(named)
    return columns


def row_numbers(indexed: list[Any]) -> set[int]:
    """Row numbers from ``unexpected_index_list``: GX gives one dict per row, or (with
    ``exclude_unexpected_values``) dicts holding lists of row numbers."""
    rows: set[int] = set()
    for entry in indexed:
        value: Any = entry.get("_row") if isinstance(entry, dict) else entry
        if isinstance(value, list):
            rows.update(int(v) for v in value)
        elif value is not None:
            rows.add(int(value))
    return rows


def collect(item: Any, result: SuiteResult) -> None:
    """Add what one expectation's result says to ``result``: its failing rows (a row-scope
    expectation) or a batch failure, with its severity; one that could not run is critical."""
    config = item.expectation_config
    name = config.meta.get("name", config.type)
    severity = str(getattr(config.severity, "value", config.severity)).lower()
    # Imported here as the module's other uses of pages are: GX loads first.
    from omnisync.validation.pages import raised_exception

    detail = raised_exception(item.exception_info)
    if detail is not None:  # could not run: critical whatever its severity (pages.py)
        result.batch_failures.append((name, "critical", f"could not run: {detail}"))
        return
    if item.success:
        return
    indexed = item.result.get("unexpected_index_list")
    if config.meta.get("scope") == "row" and indexed is not None:
        rows = sorted(row_numbers(indexed))
        result.row_failures[name] = (severity, rows)
        return
    mismatched = (item.result.get("details") or {}).get("mismatched")
    if mismatched:
        missing = mismatched.get("missing") if isinstance(mismatched, dict) else None
        if missing:
            result.batch_failures.append((name, severity, f"missing column(s): {missing}"))
            return
    observed = item.result.get("observed_value")
    count = item.result.get("unexpected_count")
    detail = (
        f"observed {observed!r}"
        if observed is not None
        else f"{count} unexpected value(s)"
        if count is not None
        else "failed"
    )
    result.batch_failures.append((name, severity, detail))
