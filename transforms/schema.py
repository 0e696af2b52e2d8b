"""The explicit Arrow schema of a customer in the lake (docs/lake.md).

API columns keep their names and meaning with real types; JSON objects are stored as JSON text
with Parquet's JSON logical type (Arrow's ``arrow.json`` extension over strings): DuckDB reads
them as ``JSON``, Spark as strings, pyarrow as ``extension<arrow.json>``, Polars as
``ext[arrow.json]`` (``.ext.storage()`` gives the text); lineage and quality columns start with
``_``. Fields the API starts sending that this schema does not know are kept, as a JSON
object, in ``_extra_fields``: schema drift never drops data silently.
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

INT_FIELDS = ("pk", "channel")
STRING_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone_number",
    "channel_code",
    "erp_code",
    "gender",
    "user_type",
)
BOOL_FIELDS = ("is_active", "email_allowed", "sms_allowed", "call_allowed")
TIMESTAMP_FIELDS = ("modified_date", "created_date", "date_joined")
DATE_FIELDS = ("date_of_birth",)
JSON_FIELDS = (
    "extra_field",
    "attributes",
    "attributes_kwargs",
    "localized_attributes",
    "localized_attributes_kwargs",
)

#: The API's fields in their documented order: every one of them must be present in a batch.
API_FIELDS: tuple[str, ...] = (
    "pk",
    "channel",
    "email",
    "first_name",
    "last_name",
    "phone_number",
    "is_active",
    "channel_code",
    "erp_code",
    "extra_field",
    "modified_date",
    "created_date",
    "date_joined",
    "email_allowed",
    "sms_allowed",
    "call_allowed",
    "gender",
    "attributes",
    "user_type",
    "date_of_birth",
    "attributes_kwargs",
    "localized_attributes",
    "localized_attributes_kwargs",
)
REQUIRED_VALUES = ("pk", "modified_date")
#: columns whose values are nearly all distinct within a file (identifiers, contact details,
#: moments, free-form JSON, a record's raw text): the lake stores them without a Parquet
#: dictionary, which for them costs a quarter of the write and adds bytes; every other column
#: (names, flags, channels, lineage) keeps one (docs/performance.md)
MOSTLY_DISTINCT = frozenset(
    (
        "pk",
        "email",
        "phone_number",
        "channel_code",
        "erp_code",
        "modified_date",
        "created_date",
        "date_joined",
        "date_of_birth",
        "attributes",
        "raw",
    )
)
#: columns of a few short values (flags, channel, gender, user type, lineage): a dictionary and
#: run lengths leave them a few bytes a page, which compression hardly shrinks, while each
#: compressed column costs the writer and every reader a compressor of its own; stored
#: uncompressed (docs/performance.md). Not ``_dq_flags``: a quarantined newer version's mark
#: names its record, a long text nearly every marked row has its own.
FEW_SHORT_VALUES = frozenset(
    ("channel", "gender", "user_type", "_run_id", "_extracted_at", "_source", *BOOL_FIELDS)
)


def _api_type(name: str) -> pa.DataType:
    if name in INT_FIELDS:
        return pa.int64()
    if name in BOOL_FIELDS:
        return pa.bool_()
    if name in TIMESTAMP_FIELDS:
        return TIMESTAMP
    if name in DATE_FIELDS:
        return pa.date32()
    if name in JSON_FIELDS:
        return JSON
    return pa.string()


JSON_METADATA = {b"omnisync.format": b"json"}
#: JSON text, written with Parquet's JSON logical type
JSON = pa.json_(pa.string())

LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_run_id", pa.string(), nullable=False),
    pa.field("_extracted_at", TIMESTAMP, nullable=False),
    pa.field("_source", pa.string(), nullable=False),
    pa.field("_extra_fields", JSON, metadata=JSON_METADATA),
    pa.field("_dq_flags", pa.list_(pa.string())),
)

CUSTOMER_SCHEMA = pa.schema(
    [
        pa.field(
            name,
            _api_type(name),
            nullable=name not in REQUIRED_VALUES,
            metadata=JSON_METADATA if name in JSON_FIELDS else None,
        )
        for name in API_FIELDS
    ]
    + list(LINEAGE_FIELDS)
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("_run_id", pa.string(), nullable=False),
        pa.field("_extracted_at", TIMESTAMP, nullable=False),
        pa.field("_source", pa.string(), nullable=False),
        pa.field("pk", pa.int64()),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
        pa.field("raw", JSON, nullable=False, metadata=JSON_METADATA),
    ]
)
