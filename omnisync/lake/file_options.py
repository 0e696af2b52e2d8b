"""How the lake's Parquet files are written: which columns get a dictionary, which are
compressed, and the cheaper options of files only omnisync reads back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from transforms.schema import FEW_SHORT_VALUES, MOSTLY_DISTINCT

#: rows of a row group in the lake's files. The Parquet writer holds a row group's pages until it
#: is complete, about 2.5 times its rows' size: one row group of a 1M lake's bucket or of a dense
#: month held 10-16 MiB of them (docs/performance.md)
ROW_GROUP_ROWS = 8192
#: every page carries its CRC, which every read checks: a file damaged where it still decodes
#: (a page of dates turned into other dates) is refused instead of merged back into the lake
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "write_statistics": True,
    "write_page_checksum": True,
}
#: files read once by omnisync itself, then deleted (staged windows): written for speed. No
#: dictionaries: a window's text columns are nearly all distinct, so building them costs much of
#: the write and saves few bytes (docs/performance.md).
SCRATCH_OPTIONS: dict[str, Any] = {
    "compression": "lz4",
    "write_statistics": False,
    "use_dictionary": False,
    "write_page_checksum": True,
}


def lake_options(schema: pa.Schema) -> dict[str, Any]:
    """How a lake file of ``schema`` is written: :data:`PARQUET_OPTIONS`, a dictionary for
    every column but ``MOSTLY_DISTINCT``, and no compression for ``FEW_SHORT_VALUES`` (by the
    top-level field: a nested field's every leaf as the field). Every leaf column is named:
    given per column, a leaf left out would be written with neither."""
    leaves = [(field.name, path) for field in schema for path in _leaf_paths(field.name, field)]
    return {
        **PARQUET_OPTIONS,
        "use_dictionary": [path for name, path in leaves if name not in MOSTLY_DISTINCT],
        "compression": {
            path: "none" if name in FEW_SHORT_VALUES else PARQUET_OPTIONS["compression"]
            for name, path in leaves
        },
    }


def _leaf_paths(path: str, field: pa.Field) -> list[str]:
    """The Parquet column paths of ``field`` at ``path``, as pyarrow writes them (lists as
    ``.list.element``, maps as ``.key_value.key`` and ``.key_value.value``)."""
    kind = field.type.storage_type if isinstance(field.type, pa.ExtensionType) else field.type
    if pa.types.is_struct(kind):
        return [p for child in kind for p in _leaf_paths(f"{path}.{child.name}", child)]
    if pa.types.is_map(kind):
        return [
            *_leaf_paths(f"{path}.key_value.key", kind.key_field),
            *_leaf_paths(f"{path}.key_value.value", kind.item_field),
        ]
    if (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_list_view(kind)
        or pa.types.is_large_list_view(kind)
    ):
        return _leaf_paths(f"{path}.list.element", kind.value_field)
    return [path]


def row_groups_of(table: pa.Table, rows: pa.Array) -> Iterator[pa.Table]:
    """``table``'s ``rows``, in their order, copied a row group at a time for
    ``LakeStorage.write_row_groups``: copying them all at once was the peak of a window's change
    log, a merged bucket and a compacted month (docs/performance.md). No row: one empty group,
    so that the file is still written, with the table's columns."""
    for start in range(0, max(len(rows), 1), ROW_GROUP_ROWS):
        yield table.take(rows.slice(start, ROW_GROUP_ROWS))
