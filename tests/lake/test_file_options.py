"""How the lake's files are written, column by column: every leaf of any nested type gets the
lake's choice, none falls to a per-column default (neither compressed nor with a dictionary)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from omnisync.lake.file_options import lake_options
from omnisync.lake.storage import LakeStorage
from transforms.schema import JSON


def test_every_leaf_of_nested_columns_is_compressed_and_keeps_its_dictionary(
    tmp_path: Path,
) -> None:
    """Found by a review: given per column, a leaf the options did not name (a struct's
    children, a large list's values, a list of lists) was written uncompressed and without a
    dictionary."""
    rows = 50
    table = pa.table(
        {
            "pk": pa.array(range(rows), pa.int64()),
            "flag": pa.array([True] * rows),
            "s": pa.array([{"a": i % 3, "b": f"x{i % 2}"} for i in range(rows)]),
            "big": pa.array([["a", "b"]] * rows, pa.large_list(pa.string())),
            "nested": pa.array([[["a"], ["b"]]] * rows, pa.list_(pa.list_(pa.string()))),
            "fixed": pa.array([[1, 2]] * rows, pa.list_(pa.int64(), 2)),
            "m": pa.array([[("k", 1)]] * rows, pa.map_(pa.string(), pa.int64())),
            "doc": pa.ExtensionArray.from_storage(JSON, pa.array(['{"a": 1}'] * rows)),
            "_dq_flags": pa.array([["quarantine_record=q/x.parquet#1"]] * rows),
            "gender": pa.array(["f"] * rows),
        }
    )
    storage = LakeStorage(str(tmp_path / "lake"))
    storage.write_table("t/part.parquet", table)
    meta = pq.ParquetFile(tmp_path / "lake" / "t" / "part.parquet").metadata.row_group(0)
    chunks = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    named = lake_options(table.schema)["compression"]
    assert set(chunks) == set(named), "every leaf named, no other"
    for path, chunk in chunks.items():
        top = path.split(".")[0]
        assert chunk.compression == ("UNCOMPRESSED" if top == "gender" else "ZSTD"), path
        if top not in ("pk", "flag"):  # pk is MOSTLY_DISTINCT; Parquet has no boolean dictionary
            assert "RLE_DICTIONARY" in chunk.encodings, path
    assert pq.read_table(tmp_path / "lake" / "t" / "part.parquet").equals(table)
