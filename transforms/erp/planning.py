"""Matching ERP rows to customers and planning the changes, in DuckDB over Arrow tables."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from transforms.erp.keys import key_problem, match_keys, stripped
from transforms.erp.tables import (
    CONFLICT_SCHEMA,
    ERP_ROW_SCHEMA,
    PLAN_SCHEMA,
    UNKNOWN_SCHEMA,
    MatchKey,
    Reconciliation,
)

# The matching rules in SQL over ``c`` (customers: pk, key, erp_code, modified_date) and ``e``
# (ERP rows: row, code, key; code null when empty, key null when not one). A key shared by
# customers is ambiguous; a customer claimed with two codes, or a code claimed for two customers,
# is a conflict; everything else is already right or planned. ``$match`` is the match key's name.
_MATCH_STEPS = (
    # Lists (of pks, of codes) are built only for the few keys and codes in conflict.
    """create temp table keyed as
    select key, count(*) as n, min(pk) as pk from c where key is not null group by key""",
    """create temp table usable as
    select e.row, e.code, e.key, k.n, k.pk
    from e left join keyed k on e.key = k.key
    where e.code is not null and e.key is not null""",
    "create temp view claims as select row, code, key, pk from usable where n = 1",
    """create temp table per_customer as
    select pk, count(distinct code) as codes, min(row) as first_row, any_value(key) as key
    from claims group by pk""",
    """create temp view single as
    select claims.* from claims join per_customer p using (pk) where p.codes = 1""",
    """create temp table per_code as
    select code, count(distinct pk) as owners, min(row) as first_row
    from single group by code""",
    # One decision per usable ERP row; a null reason is worded in Python (it quotes values).
    """create temp table decided as
    select row, 'unknown_customer' as outcome,
        'no synced customer has ' || $match || ' ' || key as reason, null::bigint as pk
    from usable where n is null
    union all
    select row, 'conflict', 'ambiguous_match: ' || n || ' Omnitron customers share this '
        || $match, null
    from usable where n > 1
    union all
    select c.row, 'conflict', null, c.pk
    from claims c join per_customer p using (pk) where p.codes > 1
    union all
    select s.row,
        case when o.owners > 1 then 'conflict' when cu.erp_code = s.code then 'already_right'
            else 'planned' end,
        case when o.owners > 1 then 'code_claimed_by_several: erp_code ' || s.code
            || ' matches ' || o.owners || ' customers' end,
        s.pk
    from single s join per_code o using (code) join c cu on cu.pk = s.pk""",
    """create temp table planned as
    select distinct on (d.pk) d.pk, e.code as erp_code, cu.erp_code as previous_erp_code,
        case when cu.erp_code is null then 'set' else 'correct' end as action,
        cu.modified_date as based_on_modified, $match as match_key, e.key as match_value
    from decided d join e using (row) join c cu on cu.pk = d.pk
    where d.outcome = 'planned' order by d.pk""",
)
_ERP_ROWS = """select e.row, e.code as erp_code, case when e.code is not null then e.key end as key,
    d.pk, coalesce(d.outcome, 'invalid') as outcome,
    case when e.code is null then 'erp_code: empty' else d.reason end as reason
from e left join decided d using (row) order by e.row"""
_UNKNOWN = """select pk, erp_code, modified_date from c
where erp_code is not null
    and erp_code not in (select code from e where code is not null)
    and pk not in (select pk from planned)
order by pk"""


#: above this many rows in all, a plan opens a database of its own, closed when it is done: the
#: process's shared one would keep the memory a large plan grew it to for the process's life
SHARED_DATABASE_ROWS = 100_000


_SHARED: list[Any] = []
_SHARED_LOCK = threading.Lock()


def _database() -> Any:
    """One in-memory DuckDB per process for small plans: opening one is most of the time a small
    input takes to plan (docs/performance.md); each plan works in a cursor of its own, whose temp
    tables are its own. Made under a lock: two threads planning at once share one database, not
    two."""
    with _SHARED_LOCK:
        if not _SHARED:
            import duckdb  # here: the rest of transforms needs no database engine

            _SHARED.append(duckdb.connect())
        return _SHARED[0]


def _planning_database(rows: int) -> Any:
    if rows > SHARED_DATABASE_ROWS:
        import duckdb

        return duckdb.connect()
    return _database().cursor()


def plan_changes(
    erp: pa.Table, customers: pa.Table, match_on: MatchKey, clear_unknown: bool = False
) -> Reconciliation:
    """What to PATCH so that Omnitron's erp_codes agree with the ERP; conflicts are left out.

    Keys are computed column-wise, the matching runs in DuckDB over Arrow tables, and Python
    touches only the rows that need words (invalid keys, customers claimed twice): 1M ERP rows
    against 1M customers in seconds, without a Python object per row.
    """
    codes = stripped(erp.column("erp_code"))
    codes = pc.if_else(pc.fill_null(pc.equal(codes, ""), True), pa.scalar(None, pa.string()), codes)
    e = pa.table(
        {
            "row": pa.array(range(erp.num_rows), pa.int64()),
            "code": codes,
            "key": match_keys(erp, match_on),
        }
    )
    c = pa.table(
        {
            "pk": customers.column("pk"),
            "key": match_keys(customers, match_on),
            "erp_code": customers.column("erp_code"),
            "modified_date": customers.column("modified_date"),
        }
    )
    match = {"match": match_on}
    with _planning_database(erp.num_rows + customers.num_rows) as db:
        db.register("e", e)
        db.register("c", c)
        for step in _MATCH_STEPS:
            db.execute(step, match if "$match" in step else None)

        def table(sql: str) -> pa.Table:
            return db.sql(sql).to_arrow_table()

        rows = table(_ERP_ROWS)
        plan = table("select * from planned").cast(PLAN_SCHEMA)
        unknown = table(_UNKNOWN).cast(UNKNOWN_SCHEMA)
        ambiguous = table(
            "select u.row, any_value(u.code) as code, u.key, any_value(u.n) as n, "
            "list(c.pk order by c.pk) as pks from usable u join c on c.key = u.key "
            "where u.n > 1 group by u.row, u.key order by u.row"
        )
        twice = table(
            "select p.pk, any_value(p.key) as key, list(distinct l.code order by l.code) "
            "as claimed, any_value(p.first_row) as first_row from per_customer p "
            "join claims l using (pk) where p.codes > 1 group by p.pk order by first_row"
        )
        several = table(
            "select o.code, list(distinct s.pk order by s.pk) as pks, any_value(o.owners) "
            "as owners, any_value(o.first_row) as first_row from per_code o "
            "join single s using (code) where o.owners > 1 group by o.code order by first_row"
        )
        ((unchanged,),) = db.execute(
            "select count(distinct pk) from decided where outcome = 'already_right'"
        ).fetchall()
    conflicts = [
        {
            "kind": "ambiguous_match",
            "erp_code": a["code"],
            "key": a["key"],
            "pks": a["pks"],
            "detail": f"{a['n']} Omnitron customers share this {match_on}",
        }
        for a in ambiguous.to_pylist()
    ]
    twice_detail = {
        t["pk"]: f"ERP rows give different codes: {t['claimed']}" for t in twice.to_pylist()
    }
    conflicts += [
        {
            "kind": "customer_claimed_twice",
            "erp_code": None,
            "key": t["key"],
            "pks": [t["pk"]],
            "detail": twice_detail[t["pk"]],
        }
        for t in twice.to_pylist()
    ]
    conflicts += [
        {
            "kind": "code_claimed_by_several",
            "erp_code": d["code"],
            "key": None,
            "pks": d["pks"],
            "detail": f"erp_code {d['code']} matches {d['owners']} customers",
        }
        for d in several.to_pylist()
    ]
    rows = _word_reasons(rows, erp, match_on, twice_detail)
    if clear_unknown:
        # Clearing is opt-in: an erp_code the ERP does not know may belong to another system.
        n = unknown.num_rows
        clears = pa.table(
            {
                "pk": unknown.column("pk"),
                "erp_code": pa.array([""] * n, pa.string()),
                "previous_erp_code": unknown.column("erp_code"),
                "action": pa.array(["clear"] * n, pa.string()),
                "based_on_modified": unknown.column("modified_date"),
                "match_key": pa.array([match_on] * n, pa.string()),
                "match_value": pa.nulls(n, pa.string()),
            }
        ).cast(PLAN_SCHEMA)
        plan = pa.concat_tables([plan, clears]).sort_by("pk")
    outcomes = rows.column("outcome")
    unmatched = pc.sum(pc.equal(outcomes, "unknown_customer")).as_py() or 0
    planned = pc.count_distinct(rows.filter(pc.equal(outcomes, "planned")).column("pk")).as_py()
    return Reconciliation(
        plan=plan,
        conflicts=pa.Table.from_pylist(conflicts, schema=CONFLICT_SCHEMA),
        unknown_in_erp=unknown,
        unmatched_erp_rows=unmatched,
        unchanged=int(unchanged),
        matched=planned + int(unchanged),
        erp_rows=rows,
    )


def _word_reasons(
    rows: pa.Table, erp: pa.Table, match_on: MatchKey, twice: dict[int, str]
) -> pa.Table:
    """Fill the reasons SQL left empty: an invalid key (naming its values) and a customer
    claimed twice (listing the codes)."""
    reasons = rows.column("reason")
    missing = pc.indices_nonzero(
        pc.and_(
            pc.is_null(reasons),
            pc.is_in(rows.column("outcome"), value_set=pa.array(["invalid", "conflict"])),
        )
    )
    if len(missing) == 0:
        return rows.cast(ERP_ROW_SCHEMA)
    words = reasons.to_pylist()
    outcome = rows.column("outcome").to_pylist()
    pks = rows.column("pk").to_pylist()
    wanted = missing.to_pylist()
    for i, source in zip(wanted, erp.take(missing).to_pylist(), strict=True):
        if outcome[i] == "invalid":
            words[i] = key_problem(source, match_on)
        else:
            words[i] = f"customer_claimed_twice: {twice[pks[i]]}"
    index = rows.schema.get_field_index("reason")
    return rows.set_column(index, "reason", pa.array(words, pa.string())).cast(ERP_ROW_SCHEMA)
