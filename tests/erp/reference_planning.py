"""The first planner, kept as the reference the Arrow/DuckDB planner must agree with.

It is a straightforward reading of the matching rules, one ERP row at a time in Python dicts
(16 s and 2 GB at 1M x 1M); ``transforms.erp.planning.plan_changes`` must give the same plan, conflicts,
unknown codes and per-row outcomes on every input (``test_planning_equivalence.py``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from transforms.erp.keys import key_of, key_problem
from transforms.erp.tables import (
    CONFLICT_SCHEMA,
    CUSTOMER_COLUMNS,
    ERP_ROW_SCHEMA,
    PLAN_SCHEMA,
    MatchKey,
    Reconciliation,
)


def reference_plan_changes(
    erp: pa.Table, customers: pa.Table, match_on: MatchKey, clear_unknown: bool = False
) -> Reconciliation:
    """What to PATCH so that Omnitron's erp_codes agree with the ERP; conflicts are left out."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    known_codes: set[str] = set()
    # Only the columns present: a PII policy may have dropped those this match does not need.
    present = [c for c in CUSTOMER_COLUMNS if c in customers.column_names]
    for customer in customers.select(present).to_pylist():
        key = key_of(customer, match_on)
        if key is not None:
            by_key[key].append(customer)
    conflicts: list[dict[str, Any]] = []
    claims: dict[int, dict[str, str]] = defaultdict(dict)  # pk -> {erp_code: key}
    claim_rows: dict[tuple[int, str], list[int]] = defaultdict(list)  # (pk, code) -> ERP rows
    customer_of: dict[int, dict[str, Any]] = {}
    unmatched = 0
    rows = erp.to_pylist()
    outcome: list[dict[str, Any]] = [
        {"row": i, "erp_code": None, "key": None, "pk": None, "outcome": "", "reason": None}
        for i in range(len(rows))
    ]

    def settle(i: int, name: str, reason: str | None = None, pk: int | None = None) -> None:
        outcome[i].update(outcome=name, reason=reason, pk=pk)

    for i, row in enumerate(rows):
        code = row.get("erp_code")
        if code is None or str(code).strip() == "":
            settle(i, "invalid", "erp_code: empty")
            continue
        code = str(code).strip()
        known_codes.add(code)
        key = key_of(row, match_on)
        outcome[i].update(erp_code=code, key=key)
        if key is None:
            settle(i, "invalid", key_problem(row, match_on))
            continue
        found = by_key.get(key, [])
        if not found:
            unmatched += 1
            settle(i, "unknown_customer", f"no synced customer has {match_on} {key}")
            continue
        if len(found) > 1:
            detail = f"{len(found)} Omnitron customers share this {match_on}"
            conflicts.append(
                {
                    "kind": "ambiguous_match",
                    "erp_code": code,
                    "key": key,
                    "pks": sorted(c["pk"] for c in found),
                    "detail": detail,
                }
            )
            settle(i, "conflict", f"ambiguous_match: {detail}")
            continue
        customer = found[0]
        claims[customer["pk"]][code] = key
        claim_rows[(customer["pk"], code)].append(i)
        customer["_key"] = key
        customer_of[customer["pk"]] = customer
    # One customer claimed with different codes, or one code claimed for different customers.
    code_owners: dict[str, set[int]] = defaultdict(set)
    for pk, codes in claims.items():
        if len(codes) > 1:
            detail = f"ERP rows give different codes: {sorted(codes)}"
            conflicts.append(
                {
                    "kind": "customer_claimed_twice",
                    "erp_code": None,
                    "key": next(iter(codes.values())),
                    "pks": [pk],
                    "detail": detail,
                }
            )
            for code in codes:
                for i in claim_rows[(pk, code)]:
                    settle(i, "conflict", f"customer_claimed_twice: {detail}", pk)
        else:
            code_owners[next(iter(codes))].add(pk)
    plan: list[dict[str, Any]] = []
    unchanged = matched = 0
    for code, owners in code_owners.items():
        if len(owners) > 1:
            detail = f"erp_code {code} matches {len(owners)} customers"
            conflicts.append(
                {
                    "kind": "code_claimed_by_several",
                    "erp_code": code,
                    "key": None,
                    "pks": sorted(owners),
                    "detail": detail,
                }
            )
            for pk in owners:
                for i in claim_rows[(pk, code)]:
                    settle(i, "conflict", f"code_claimed_by_several: {detail}", pk)
            continue
        pk = next(iter(owners))
        customer = customer_of[pk]
        matched += 1
        if customer["erp_code"] == code:
            unchanged += 1
            for i in claim_rows[(pk, code)]:
                settle(i, "already_right", None, pk)
            continue
        for i in claim_rows[(pk, code)]:
            settle(i, "planned", None, pk)
        plan.append(
            {
                "pk": pk,
                "erp_code": code,
                "previous_erp_code": customer["erp_code"],
                "action": "set" if customer["erp_code"] is None else "correct",
                "based_on_modified": customer["modified_date"],
                "match_key": match_on,
                "match_value": customer["_key"],
            }
        )
    unsettled = [o["row"] for o in outcome if not o["outcome"]]
    if unsettled:  # a bug here must not pass for a clean run
        raise AssertionError(f"ERP rows without an outcome: {unsettled[:5]}")
    planned = {p["pk"] for p in plan}
    unknown = [
        c
        for c in customers.select(["pk", "erp_code", "modified_date"]).to_pylist()
        if c["erp_code"] is not None and c["erp_code"] not in known_codes and c["pk"] not in planned
    ]
    if clear_unknown:
        # Clearing is opt-in: an erp_code the ERP does not know may belong to another system.
        plan.extend(
            {
                "pk": c["pk"],
                "erp_code": "",
                "previous_erp_code": c["erp_code"],
                "action": "clear",
                "based_on_modified": c["modified_date"],
                "match_key": match_on,
                "match_value": None,
            }
            for c in unknown
        )
    plan.sort(key=lambda p: p["pk"])
    return Reconciliation(
        plan=pa.Table.from_pylist(plan, schema=PLAN_SCHEMA),
        conflicts=pa.Table.from_pylist(conflicts, schema=CONFLICT_SCHEMA),
        unknown_in_erp=pa.Table.from_pylist(
            unknown,
            schema=pa.schema(
                [
                    pa.field("pk", pa.int64()),
                    pa.field("erp_code", pa.string()),
                    pa.field("modified_date", pa.timestamp("us", tz="UTC")),
                ]
            ),
        ),
        unmatched_erp_rows=unmatched,
        unchanged=unchanged,
        matched=matched,
        erp_rows=pa.Table.from_pylist(outcome, schema=ERP_ROW_SCHEMA),
    )
