"""A sample ERP database that fits the sandbox's customers, for the demo and the tests.

Built from the sandbox's ground truth, deterministically: most customers' codes agree with
Omnitron, every tenth differs (to correct), customers without a code get one (to set), a few rows
conflict (one customer with two codes, one code for two customers), and the last fifth of the
customers are not in the ERP at all (their codes are "unknown to the ERP").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

TABLE = "erp_customers"
QUERY = f"select customer_id as pk, account_no as erp_code from {TABLE}"  # noqa: S608 - a constant


def sample_rows(customers: list[dict[str, Any]]) -> list[tuple[int, str]]:
    ordered = sorted(customers, key=lambda c: c["pk"])
    known = ordered[: len(ordered) * 4 // 5]
    rows: list[tuple[int, str]] = []
    for customer in known[:-3]:
        pk, code = customer["pk"], customer["erp_code"]
        if pk % 10 == 3:
            code = f"ERP-{pk:07d}"
        rows.append((pk, code or f"ERP-{pk:07d}"))
    a, b, c = (customer["pk"] for customer in known[-3:])
    rows += [(a, f"ERP-{a:07d}"), (a, f"ERP-{a:07d}-B"), (b, "ERP-SHARED"), (c, "ERP-SHARED")]
    return rows


def write_sample_erp(path: Path, customers: list[dict[str, Any]]) -> str:
    """Write the sample ERP as a SQLite database at ``path``; returns its SQLAlchemy URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(f"create table {TABLE} (customer_id integer, account_no text)")
        connection.executemany(f"insert into {TABLE} values (?, ?)", sample_rows(customers))  # noqa: S608
    connection.close()
    return f"sqlite:///{path.resolve()}"
