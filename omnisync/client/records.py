"""Customer records decoded straight into typed structs (msgspec), exactly as sent (G6).

A page's ``results`` are decoded in one call into :class:`Customer` structs: integers, strings
and booleans typed, timestamps kept as their text (the transform parses them column by column),
and the JSON objects (``extra_field``, ``attributes`` and the rest) kept as the raw JSON text the
server sent (``msgspec.Raw``): no number in them is ever parsed or written again. A struct holds
its values in slots: no dict per customer is built on this path.

msgspec drops unknown fields silently by default; :class:`Customer` forbids them instead, as it
requires every documented field and refuses a value of another type. So a page decodes in one
call only when every record in it is exactly a documented customer. Otherwise the page is
decoded again record by record (its records as raw slices). A record whose only fault is fields
the schema does not know becomes a :class:`DriftedCustomer`: typed like any other, with its key
set read as raw slices, so its unknown fields are kept as the server's text and counted. Any
other (a field missing, a value of another type) is decoded into an exact dict
(``exact_json.loads_exact``) for the transform's checks, which quarantine it with its reasons.
Noticing costs nothing (the decoder refuses the page); only drifted or broken records pay.

msgspec rather than pydantic or orjson-then-typing: it types while it parses, in C, without an
intermediate dict, and its ``Raw`` keeps a value's text untouched.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omnisync.client.exact_json import loads_exact


class Customer(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One customer exactly as documented: every field present, of its type. The fields are in
    the API's documented order (``transforms.schema.API_FIELDS``, checked by the tests)."""

    pk: int
    channel: int | None
    email: str | None
    first_name: str | None
    last_name: str | None
    phone_number: str | None
    is_active: bool | None
    channel_code: str | None
    erp_code: str | None
    extra_field: msgspec.Raw
    modified_date: str
    created_date: str | None
    date_joined: str | None
    email_allowed: bool | None
    sms_allowed: bool | None
    call_allowed: bool | None
    gender: str | None
    attributes: msgspec.Raw
    user_type: str | None
    date_of_birth: str | None
    attributes_kwargs: msgspec.Raw
    localized_attributes: msgspec.Raw
    localized_attributes_kwargs: msgspec.Raw


class SentCustomer(Customer):
    """A customer as decoded from an answer, with where its text is: the ``raw`` of it, should it
    be quarantined, is that text byte for byte (its fields in the server's order, which the API
    does not promise), never the struct written again. The fields below are set after decoding
    (a record holding a key of their names is decoded the slow way, see ``decode_records``)."""

    #: the unknown fields' names, sorted (a :class:`DriftedCustomer`'s; none here)
    extra_keys: tuple[str, ...] = msgspec.field(default=(), name="omnisync:extra_keys")
    #: a JSON object of the unknown fields, each value the server's own text
    extra_text: str = msgspec.field(default="", name="omnisync:extra_text")
    #: the record as the server sent it (bytes-like); or, with a ``position`` from 0, the whole
    #: ``results`` array it came in, which every struct of the page shares (its JSON objects are
    #: ``Raw`` views of that text already): one record's text is cut out only if it is needed
    source: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="omnisync:source")
    position: int = msgspec.field(default=-1, name="omnisync:position")


class DriftedCustomer(SentCustomer, forbid_unknown_fields=False):
    """A documented customer sent with fields the schema does not know. The fields of
    :class:`SentCustomer` are set from the record's key set after it is decoded (whatever a
    server sent under their names is overwritten, and kept among the unknown fields)."""


#: a record: a typed customer, or (broken) the exact dict or value of what was sent
Record = Customer | Any
_KNOWN = frozenset(Customer.__struct_fields__)


class _Envelope(msgspec.Struct):
    """A list answer with its results left unparsed (``Raw(b"")``: no results at all)."""

    count: Any = None
    next: Any = None
    results: msgspec.Raw = msgspec.Raw(b"")


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_CUSTOMERS = msgspec.json.Decoder(list[SentCustomer])
_CUSTOMER = msgspec.json.Decoder(SentCustomer)
#: in a text holding it, a server's key could land in a field of :class:`SentCustomer`
_OWN_NAMES = b'"omnisync:'

_DRIFTED = msgspec.json.Decoder(DriftedCustomer)
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_DRIFTED_LIST = msgspec.json.Decoder(list[DriftedCustomer])
_KEY_SETS = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_SLICES = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()


def envelope(body: bytes) -> tuple[Any, Any, bytes] | None:
    """``(count, next, results text)`` of a list answer, or None when msgspec cannot read it as
    one (not JSON, not an object, no ``results``, or text only the stdlib reads): the caller
    then decodes it exactly as any other answer."""
    try:
        page = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not len(page.results):
        return None
    return page.count, page.next, bytes(page.results)


def decode_records(results: bytes) -> list[Record]:
    """The records of a ``results`` array: a :class:`Customer` for each that is exactly one, a
    :class:`DriftedCustomer` for one with unknown fields, the exact dict (or value) of what was
    sent for the others. Raises ValueError if ``results`` is not a JSON array."""
    if _OWN_NAMES not in results:
        try:
            records = _CUSTOMERS.decode(results)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            page = msgspec.Raw(results)
            for position, record in enumerate(records):
                record.source = page
                record.position = position
            return list(records)
    try:
        slices = _SLICES.decode(results)
    except (msgspec.DecodeError, msgspec.ValidationError):
        value = loads_exact(results)
        if not isinstance(value, list):
            raise ValueError("results is not a JSON array") from None
        return value
    try:
        # Only drift (an API that added a field, mostly for good): each page in three calls,
        # no exception per record.
        drifted = _DRIFTED_LIST.decode(results)
        fields = _KEY_SETS.decode(results)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return [_record(bytes(text)) for text in slices]
    return [
        _kept(record, keys, text)
        for record, keys, text in zip(drifted, fields, slices, strict=True)
    ]


def _record(text: bytes) -> Record:
    if _OWN_NAMES not in text:
        try:
            record = _CUSTOMER.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            record.source = msgspec.Raw(text)
            return record
    try:
        drifted = _DRIFTED.decode(text)
        fields = _KEYS.decode(text)  # the key set, each value as its raw slice
    except (msgspec.DecodeError, msgspec.ValidationError):
        return loads_exact(text)
    return _kept(drifted, fields, text)


def _kept(drifted: DriftedCustomer, fields: dict[str, msgspec.Raw], text: Any) -> Record:
    """``drifted`` with its unknown fields (from its key set ``fields``), if any, and its
    ``text`` kept (whatever the server sent under the names of these fields is overwritten)."""
    extra = sorted(key for key in fields if key not in _KNOWN)
    drifted.extra_keys = tuple(extra)
    drifted.extra_text = (
        (b"{" + b",".join(_ENCODER.encode(key) + b":" + fields[key] for key in extra) + b"}")
        if extra
        else b""
    ).decode()
    drifted.source = text if isinstance(text, msgspec.Raw) else msgspec.Raw(text)
    drifted.position = -1
    return drifted


def record_pk(record: Record) -> Any:
    """The record's pk as sent (None if it has none)."""
    if isinstance(record, Customer):
        return record.pk
    return record.get("pk") if isinstance(record, dict) else None


def record_modified(record: Record) -> Any:
    """The record's ``modified_date`` as sent (None if it has none)."""
    if isinstance(record, Customer):
        return record.modified_date
    return record.get("modified_date") if isinstance(record, dict) else None


def customer_text(customer: Customer) -> str:
    """A typed customer's JSON text, the ``raw`` of one quarantined after decoding: for one
    decoded from an answer, its text as the server sent it; for one made otherwise, its fields
    in documented order, each JSON object as the server's own text."""
    if isinstance(customer, SentCustomer) and len(customer.source):
        if customer.position < 0:
            return bytes(customer.source).decode()
        return bytes(_SLICES.decode(customer.source)[customer.position]).decode()
    return _ENCODER.encode(customer).decode()
