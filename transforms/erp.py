"""ERP reconciliation as pure functions: normalise keys, match ERP rows to customers, plan changes.

Matching never guesses. An ERP row that fits several customers, a customer claimed by ERP rows
with different codes, and an erp_code claimed for several customers are all *conflicts*: reported,
never planned. Every ERP input row ends in exactly one named outcome (``ERP_ROW_OUTCOMES``):
planned, already right, conflict, unknown customer, or invalid with the reason.

Normalisation exists only here: emails are trimmed and case-folded, phone numbers
parsed to E.164 (default region TR). The lake keeps the source values untouched (G6).
"""

from __future__ import annotations

import decimal
import functools
import threading
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

MatchKey = Literal["pk", "channel_code", "email", "phone"]
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "pk": ("pk",),
    "channel_code": ("channel", "channel_code"),
    "email": ("email",),
    "phone": ("phone_number",),
}
CUSTOMER_COLUMNS = [
    "pk",
    "channel",
    "channel_code",
    "email",
    "phone_number",
    "erp_code",
    "modified_date",
]

PLAN_SCHEMA = pa.schema(
    [
        pa.field("pk", pa.int64(), nullable=False),
        pa.field("erp_code", pa.string(), nullable=False),
        pa.field("previous_erp_code", pa.string()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("based_on_modified", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("match_key", pa.string(), nullable=False),
        # The normalised key the customer matched by, so the write-back can refuse a customer
        # whose key changed in Omnitron since the plan (None for clears: nothing matched).
        pa.field("match_value", pa.string()),
    ]
)
ERP_ROW_OUTCOMES = ("planned", "already_right", "conflict", "unknown_customer", "invalid")
ERP_ROW_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),  # 0-based position in the ERP input
        pa.field("erp_code", pa.string()),
        pa.field("key", pa.string()),
        pa.field("pk", pa.int64()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
    ]
)
UNKNOWN_SCHEMA = pa.schema(
    [
        pa.field("pk", pa.int64()),
        pa.field("erp_code", pa.string()),
        pa.field("modified_date", pa.timestamp("us", tz="UTC")),
    ]
)
CONFLICT_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("erp_code", pa.string()),
        pa.field("key", pa.string()),
        pa.field("pks", pa.list_(pa.int64())),
        pa.field("detail", pa.string(), nullable=False),
    ]
)

#: what became of each planned change (``omnisync.erp.outcomes``)
OUTCOMES_SCHEMA = pa.schema(
    [
        pa.field("_run_id", pa.string()),
        pa.field("pk", pa.int64()),
        pa.field("erp_code", pa.string()),
        pa.field("previous_erp_code", pa.string()),
        pa.field("based_on_modified", pa.timestamp("us", tz="UTC")),
        pa.field("outcome", pa.string()),
        pa.field("status_code", pa.int64()),
        pa.field("detail", pa.string()),
        pa.field("lost_answers", pa.int64()),
        pa.field("seen_modified", pa.timestamp("us", tz="UTC")),
        pa.field("seen_erp_code", pa.string()),
    ]
)


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().casefold()


@functools.lru_cache(maxsize=262_144)
def normalise_phone(value: Any, region: str = "TR") -> str | None:
    """E.164 (``+905321234567``) or None when the number does not parse to a valid one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _integer(value: Any) -> int | None:
    """An id as an int: ``7``, ``"7"``, ``7.0`` and ``"7.0"`` (spreadsheets and float columns
    write ids so) are all 7; anything else, fractional or not a number, is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def key_of(row: dict[str, Any], match_on: MatchKey) -> str | None:
    """The normalised matching key of a customer or ERP row (None: it cannot be matched)."""
    if match_on == "pk":
        pk = _integer(row.get("pk"))
        return None if pk is None else str(pk)
    if match_on == "channel_code":
        channel, code = _integer(row.get("channel")), row.get("channel_code")
        if channel is None or code is None or str(code).strip() == "":
            return None
        return f"{channel}|{str(code).strip()}"
    if match_on == "email":
        return normalise_email(row.get("email"))
    return normalise_phone(row.get("phone_number"))


def key_problem(row: dict[str, Any], match_on: MatchKey) -> str:
    """Why ``key_of`` gave None for an ERP row, naming the column and the value."""
    columns = KEY_COLUMNS[match_on]
    shown = ", ".join(f"{c}={row.get(c)!r:.40}" for c in columns)
    what = {
        "pk": "not an integer",
        "channel_code": "channel not an integer or channel_code empty",
        "email": "empty",
        "phone": "not a valid phone number",
    }[match_on]
    return f"{'/'.join(columns)}: {what} ({shown})"


@dataclass
class Reconciliation:
    plan: pa.Table
    conflicts: pa.Table
    unknown_in_erp: pa.Table
    unmatched_erp_rows: int
    unchanged: int
    matched: int
    erp_rows: pa.Table  # one row per ERP input row with its outcome (ERP_ROW_SCHEMA)

    def row_counts(self) -> dict[str, int]:
        """How many ERP rows ended in each outcome; they add up to the input's rows."""
        outcomes = self.erp_rows.column("outcome").to_pylist()
        return {name: outcomes.count(name) for name in ERP_ROW_OUTCOMES}


def _integer_keys(column: pa.ChunkedArray) -> pa.Array:
    """``_integer`` over a column, as strings: vectorised for integers and plain digit strings
    (nearly every input), one value at a time for the rest (``"7.0"``, ``"abc"``)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        plain = pc.fill_null(pc.match_substring_regex(text, r"^-?[0-9]{1,18}$"), False)
        fast = pc.cast(pc.cast(pc.if_else(plain, text, None), pa.int64()), pa.string())
        if pc.all(pc.or_(plain, pc.is_null(text))).as_py():
            return fast
        slow = [
            None if keep else _str_or_none(_integer(value))
            for keep, value in zip(plain.to_pylist(), column.to_pylist(), strict=True)
        ]
        return pc.coalesce(fast, pa.array(slow, pa.string()))
    return pa.array([_str_or_none(_integer(v)) for v in column.to_pylist()], pa.string())


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def _stripped(column: pa.ChunkedArray) -> pa.Array:
    """``str(value).strip()`` over a column, None for nulls."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return pa.array(
        [None if v is None else str(v).strip() for v in column.to_pylist()], pa.string()
    )


def match_keys(table: pa.Table, match_on: MatchKey) -> pa.Array:
    """``key_of`` over every row of ``table`` (customers or ERP rows), as one string array."""
    if match_on == "pk":
        return _integer_keys(table.column("pk"))
    if match_on == "channel_code":
        channel = _integer_keys(table.column("channel"))
        code = _stripped(table.column("channel_code"))
        usable = pc.and_(pc.is_valid(channel), pc.fill_null(pc.not_equal(code, ""), False))
        joined = pc.binary_join_element_wise(channel, code, "|")
        return pc.if_else(usable, joined, pa.scalar(None, pa.string()))
    if match_on == "email":
        return pa.array(
            [normalise_email(v) for v in table.column("email").to_pylist()], pa.string()
        )
    return pa.array(
        [normalise_phone(v) for v in table.column("phone_number").to_pylist()], pa.string()
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
    """One in-memory DuckDB per process for small plans: opening one costs about 60 ms, most of
    planning a small input; each plan works in a cursor of its own, whose temp tables are its
    own. Made under a lock: two threads planning at once share one database, not two."""
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
    codes = _stripped(erp.column("erp_code"))
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


def replan_one(fresh: dict[str, Any], change: dict[str, Any]) -> tuple[str | None, str]:
    """For a customer that changed since the plan: the code to send (or None) and why.

    The change still applies only if the customer still matches the ERP row by the same key and
    nobody set its erp_code in Omnitron meanwhile.
    """
    current = fresh.get("erp_code")
    target = str(change["erp_code"])
    if change["action"] == "clear":
        if current in (None, ""):
            return None, "already clear"
        if current != change["previous_erp_code"]:
            return None, f"erp_code changed in Omnitron since the plan ({current!r}); not cleared"
        return "", "still to clear"
    if current == target:
        return None, "erp_code already current"
    if current != change["previous_erp_code"]:
        return None, (
            f"erp_code changed in Omnitron since the plan "
            f"({change['previous_erp_code']!r} -> {current!r}); not overwritten"
        )
    if (
        change.get("match_value") is not None
        and key_of(fresh, change["match_key"]) != change["match_value"]
    ):
        return (
            None,
            f"the customer's {change['match_key']} changed since the plan; no longer matches",
        )
    return target, "still to set"
