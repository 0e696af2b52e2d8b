"""Whether a phone number is valid, as phonenumbers says, at a fraction of its cost.

``phonenumbers.parse`` plus ``is_valid_number`` would be most of a sync's validation time
(docs/performance.md). The common Turkish shapes (``+90 532 123 45 67``, ``05321234567``,
``5321234567``) need neither the parser nor its type-by-type loop: their national significant
number is the digits after ``+90`` or the national prefix ``0``, and a number is valid when
phonenumbers' own metadata for the region matches it (the general pattern, then any one number
type, each with its possible lengths). That test is compiled once, from the metadata the library
ships, into one regular expression. Every other shape goes to phonenumbers itself.
``tests/transforms/test_phones.py`` holds the two answers equal with hypothesis.

:func:`phones_are_valid` asks the same of a whole column at once, in Arrow's regular expressions
(RE2, no Python per number): the shapes and each description's pattern and lengths as separate
tests, since RE2 has no lookahead. A number it cannot decide that way (any other shape, spaces
around it, digits that are not ASCII) is asked of :func:`phone_is_valid`, one at a time.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata

DEFAULT_REGION = "TR"
#: the number types phonenumbers tries after the general pattern (``_number_type_helper``)
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _desc_pattern(desc: object) -> str | None:
    """One number description as a regular expression, its possible lengths included."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or pattern is None:
        return None
    lengths = [n for n in (getattr(desc, "possible_length", None) or ()) if n > 0]
    length = "(?=" + "|".join(rf"\d{{{n}}}$" for n in lengths) + ")" if lengths else ""
    return f"{length}(?:{pattern})$"


def _metadata(region: str) -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"phonenumbers has no metadata for region {region!r}")
    return metadata


@functools.cache
def _valid_national_number(region: str) -> re.Pattern[str]:
    metadata = _metadata(region)
    general = _desc_pattern(metadata.general_desc)
    types = [p for p in (_desc_pattern(getattr(metadata, t, None)) for t in _TYPES) if p]
    return re.compile(f"(?={general})(?:{'|'.join(types)})")


@functools.cache
def _simple_shapes(region: str) -> re.Pattern[str]:
    """``+<country code>``, the national prefix, or no prefix, then digits and single spaces.
    Digits that start with the country code are left to the parser (it may read them as one)."""
    metadata = _metadata(region)
    code = str(metadata.country_code)
    prefix = re.escape(metadata.national_prefix or "")
    return re.compile(
        rf"\+{code} ?(?P<international>[1-9](?: ?\d)*)"
        + (rf"|{prefix} ?(?P<national>[1-9](?: ?\d)*)" if prefix else "")
        + rf"|(?!{code})(?P<bare>[1-9](?: ?\d)*)"
    )


def phonenumbers_says_valid(raw: str, region: str = DEFAULT_REGION) -> bool:
    """phonenumbers' own answer, the slow way."""
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(raw, region)))
    except phonenumbers.NumberParseException:
        return False


def phone_is_valid(raw: str | None, region: str = DEFAULT_REGION) -> bool | None:
    """Whether a phone number parses to a valid number (None when there is no number)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if region == DEFAULT_REGION:  # the shapes above are proven for this region's metadata
        shape = _simple_shapes(region).fullmatch(text)
        if shape is not None:
            digits = (shape["international"] or shape["national"] or shape["bare"]).replace(" ", "")
            return _valid_national_number(region).match(digits) is not None
    return phonenumbers_says_valid(text, region)


#: the shapes :func:`phone_is_valid` reads without the parser, in RE2 (ASCII digits only; the
#: bare shape's "not the country code first" is a separate test)
_RE2_DIGITS = "[1-9](?: ?[0-9])*"


@functools.cache
def _re2_descriptions(region: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The general description, then each number type's: an anchored pattern and its lengths
    (empty: any length), as :func:`_desc_pattern` reads them."""
    metadata = _metadata(region)
    found = []
    for desc in (metadata.general_desc, *(getattr(metadata, t, None) for t in _TYPES)):
        pattern = getattr(desc, "national_number_pattern", None)
        if desc is None or pattern is None:
            continue
        lengths = tuple(n for n in (getattr(desc, "possible_length", None) or ()) if n > 0)
        found.append((f"^(?:{pattern})$", lengths))
    return tuple(found)


def _described(digits: pa.Array, pattern: str, lengths: tuple[int, ...]) -> pa.Array:
    matched = pc.match_substring_regex(digits, pattern)
    if not lengths:
        return matched
    return pc.and_(matched, pc.is_in(pc.utf8_length(digits), pa.array(lengths, pa.int32())))


def phones_are_valid(numbers: pa.Array, region: str = DEFAULT_REGION) -> pa.Array:
    """:func:`phone_is_valid` of each of ``numbers`` (strings), as a boolean array (null where
    there is no number): the common shapes decided column-wise, the rest one by one."""
    fast = _decided_by_shape(numbers, region) if region == DEFAULT_REGION else None
    if fast is None:  # every number the slow way
        return pa.array([phone_is_valid(n, region) for n in numbers.to_pylist()], pa.bool_())
    decided, answers = fast
    undecided = pc.invert(decided.fill_null(False))
    slow = numbers.filter(undecided).to_pylist()
    if not slow:
        return answers
    asked = pa.array([phone_is_valid(raw, region) for raw in slow], pa.bool_())
    return pc.replace_with_mask(answers, undecided, asked)


def _decided_by_shape(numbers: pa.Array, region: str) -> tuple[pa.Array, pa.Array] | None:
    """Which numbers have a shape of :func:`_simple_shapes` and nothing around it, and for those
    whether phonenumbers' metadata matches their national number; None when RE2 cannot take the
    metadata's patterns (every number is then asked one by one)."""
    metadata = _metadata(region)
    code = str(metadata.country_code)
    prefix = metadata.national_prefix or ""
    international = pc.match_substring_regex(numbers, f"^\\+{code} ?{_RE2_DIGITS}$")
    national = (
        pc.match_substring_regex(numbers, f"^{re.escape(prefix)} ?{_RE2_DIGITS}$")
        if prefix
        else pa.nulls(len(numbers), pa.bool_()).fill_null(False)
    )
    bare = pc.and_(
        pc.match_substring_regex(numbers, f"^{_RE2_DIGITS}$"),
        pc.invert(pc.starts_with(numbers, code)),
    )
    decided = pc.or_(pc.or_(international, national), bare)
    # the national number: what follows the shape's prefix (Python's alternation order), spaces
    # removed
    digits = pc.replace_substring(
        pc.if_else(
            international,
            pc.utf8_slice_codeunits(numbers, len(code) + 1),
            pc.if_else(national, pc.utf8_slice_codeunits(numbers, len(prefix)), numbers),
        ),
        " ",
        "",
    )
    try:
        tests = [_described(digits, p, n) for p, n in _re2_descriptions(region)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    general, *types = tests
    any_type = types[0] if types else pa.nulls(len(numbers), pa.bool_()).fill_null(False)
    for test in types[1:]:
        any_type = pc.or_(any_type, test)
    valid = pc.and_(general, any_type)
    return decided, pc.if_else(decided, valid, pa.scalar(None, pa.bool_()))
