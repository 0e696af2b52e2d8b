"""The bare floor of a full sync: httpx + orjson + pyarrow, everything in memory.

``python -m bench.floor URL``: log in, page through every customer (``next`` links), decode each
page with orjson and build one Arrow table. No validation, no lake, no state: what any client
must spend to hold Omnitron's customers as Arrow. ``bench/sync.py`` runs it as a child process and
measures it exactly as it measures ``omnisync sync`` (wall, CPU of the process, peak RSS).

``python -m bench.floor URL --without-collector`` does the same with Python's cycle collector
off from its first request (its imports are made with it on). The floor holds every record as a
dict until the end, and each of the collector's full passes walks all of them again: at 1M that
is 6-10 CPU-s of its 20-24, a share that moves by several CPU-seconds from run to run. The
sync's ratio to this stricter floor is printed beside the goal's (docs/performance.md).
"""

from __future__ import annotations

import gc
import sys

import httpx
import orjson
import pyarrow as pa


def main(url: str) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        login = http.post(
            "/api/v1/auth/login/", json={"username": "sandbox", "password": "sandbox"}
        )
        http.headers["Authorization"] = f"Token {login.json()['key']}"
        records: list[dict[str, object]] = []
        params: dict[str, str] | None = {"limit": "1000", "sort": "pk"}
        next_url: str | None = "/api/v1/customers/"
        while next_url:
            body = orjson.loads(http.get(next_url, params=params).content)
            records.extend(body["results"])
            next_url, params = body["next"], None
    table = pa.Table.from_pylist(records)
    print(table.num_rows)


if __name__ == "__main__":
    if "--without-collector" in sys.argv[2:]:
        gc.disable()
    main(sys.argv[1])
