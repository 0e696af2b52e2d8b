"""ERP reconciliation as pure functions: normalise keys, match ERP rows to customers, plan changes.

Matching never guesses. An ERP row that fits several customers, a customer claimed by ERP rows
with different codes, and an erp_code claimed for several customers are all *conflicts*: reported,
never planned. Every ERP input row ends in exactly one named outcome (``ERP_ROW_OUTCOMES``):
planned, already right, conflict, unknown customer, or invalid with the reason.

- ``tables``: the match keys, and the schema of every table reconciliation reads or writes;
- ``keys``: normalising a row's key (emails, E.164 phone numbers, ids), one row or a column;
- ``planning``: matching ERP rows to customers in DuckDB, and the plan of changes;
- ``replanning``: whether a planned change still applies to a customer read again.
"""
