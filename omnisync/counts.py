"""A run's counts as people read them in a Prefect artifact: a Markdown table, one row per count.

Nested counts (the outcomes of a write-back, what became of the ERP rows) get a row each, named
``outcomes: ok``, never the text of a Python dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    text = str(value).replace("|", "\\|")
    return f"`{text}`" if "/" in text else text  # a path: copyable as it is


def counts_markdown(counts: Mapping[str, Any]) -> str:
    """``counts`` as a two-column Markdown table (what, value)."""
    rows: list[tuple[str, str]] = []
    for key, value in counts.items():
        label = key.replace("_", " ")
        if isinstance(value, Mapping):
            if not value:
                rows.append((label, "none"))
            for name, inner in value.items():
                rows.append((f"{label}: {str(name).replace('_', ' ')}", _cell(inner)))
        else:
            rows.append((label, _cell(value)))
    return "| what | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
