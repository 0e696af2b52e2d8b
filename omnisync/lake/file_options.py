"""How the lake's Parquet files are written: which columns get a dictionary, which are
compressed, and the cheaper options of files only omnisync reads back."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from transforms.schema import FEW_SHORT_VALUES, MOSTLY_DISTINCT

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
    every column but ``MOSTLY_DISTINCT``, and no compression for ``FEW_SHORT_VALUES``."""
    paths = {
        field.name: f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name
        for field in schema
    }
    return {
        **PARQUET_OPTIONS,
        "use_dictionary": [path for name, path in paths.items() if name not in MOSTLY_DISTINCT],
        "compression": {
            path: "none" if name in FEW_SHORT_VALUES else PARQUET_OPTIONS["compression"]
            for name, path in paths.items()
        },
    }
