"""The lake on an object store: s3:// against a local S3-compatible server (moto in server mode)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pyarrow as pa
import pytest

from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from tests.lake.test_lake import versions


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # imported here: every xdist worker collects this module, one runs it (moto takes 0.4 s)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_the_lake_works_on_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}, "skip_instance_cache": True}
    storage = LakeStorage("s3://omnisync-lake/prod", **options)
    storage.fs.mkdir("omnisync-lake")
    storage.check_writable()
    snapshot = Snapshot(storage, buckets=4)
    snapshot.merge(versions([(pk, 0) for pk in range(1, 21)]))
    snapshot.merge(versions([(3, 5), (7, 5)], run=2))
    rows = snapshot.read(["pk", "first_name"]).to_pylist()
    assert sorted(r["pk"] for r in rows) == list(range(1, 21))
    assert {r["pk"]: r["first_name"] for r in rows}[3] == "v5"
    log = ChangeLog(storage)
    log.write_window(versions([(1, 0), (2, 1)]), "w1")
    log.write_window(versions([(1, 0), (2, 1)]), "w1")
    files = storage.files("customer_changes")
    assert len(files) == 1
    assert pa.concat_tables([storage.read_table(f) for f in files]).num_rows == 2
    assert not any(".tmp-" in f for f in storage.fs.find("omnisync-lake"))
