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


def one_chunk(table: pa.Table) -> pa.Table:
    """``table`` with every column in one chunk, joined a column at a time: each column's chunks
    can go as soon as its joined copy replaces them (when nothing else holds them), so joining
    costs about one column's memory, not the table's. A take from a column of many chunks joins
    them first, every time (pyarrow 26): blocks taken one after another from a window's or a
    month's table cost time in proportion to its size for every block."""
    for index in range(table.num_columns):
        column = table.column(index)
        if column.num_chunks > 1:
            table = table.set_column(index, table.field(index), column.combine_chunks())
    return table


class TakenRows:
    """A table's ``rows`` (row numbers, in the order to write them), copied out a block of
    :data:`ROW_GROUP_ROWS` at a time, for ``LakeStorage.write_row_groups``. Copying them all at
    once, then writing them as one row group, was the peak of a window's change log, a merged
    bucket and a compacted month (docs/performance.md). By blocks, not by request: a take from
    a window's table of many chunks costs about a millisecond whatever its size, and a window's
    hundred small months each taking their own rows cost a tenth of a second more. A caller
    that can let go of its table's chunks passes it through :func:`one_chunk` first."""

    def __init__(self, table: pa.Table, rows: pa.Array) -> None:
        # more than one block from a table of many chunks: joined once (see one_chunk), or
        # every block would join them again (quadratic in the table's rows)
        several = len(rows) > ROW_GROUP_ROWS
        self.table = one_chunk(table) if several else table
        self.rows = rows
        self._held: tuple[int, pa.Table] | None = None

    def _block(self, number: int) -> pa.Table:
        if self._held is None or self._held[0] != number:
            self._held = None  # the block before goes first
            start = number * ROW_GROUP_ROWS
            self._held = (number, self.table.take(self.rows.slice(start, ROW_GROUP_ROWS)))
        return self._held[1]

    def between(self, start: int, end: int) -> Iterator[pa.Table]:
        """The rows at ``rows[start:end]``, in order, as slices of the blocks (no row: one empty
        table, so that a file is still written, with the table's columns)."""
        if end <= start:
            yield self.table.slice(0, 0)
            return
        for number in range(start // ROW_GROUP_ROWS, (end - 1) // ROW_GROUP_ROWS + 1):
            lo = max(start, number * ROW_GROUP_ROWS)
            hi = min(end, (number + 1) * ROW_GROUP_ROWS)
            yield self._block(number).slice(lo - number * ROW_GROUP_ROWS, hi - lo)

    def all(self) -> Iterator[pa.Table]:
        return self.between(0, len(self.rows))
