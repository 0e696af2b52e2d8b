"""The client's own CPU cost per customer, against a bare httpx + orjson loop over the same pages.

Target: within 1.5x of the bare loop, for the typed records the sync reads (``Page.records``);
the exact dicts other callers read (``Page.results``) are shown beside them. Both run in this
process; the sandbox runs in another, so process CPU time is the client's alone.
"""

from __future__ import annotations

import time

import httpx
import orjson
from pydantic import SecretStr

from bench.sandbox_process import sandbox_process
from omnisync.client import CustomerQuery, OmnitronClient, Throttle

CUSTOMERS = 100_000
PAGE = 1000
ROUNDS = 3


def bare(url: str) -> float:
    with httpx.Client(base_url=url, timeout=60) as http:
        key = http.post("/api/v1/auth/login/", json={"username": "sandbox", "password": "sandbox"})
        http.headers["Authorization"] = f"Token {key.json()['key']}"
        started, seen = time.process_time(), 0
        params: dict[str, str] | None = {"limit": str(PAGE), "sort": "pk"}
        next_url: str | None = "/api/v1/customers/"
        while next_url:
            body = orjson.loads(http.get(next_url, params=params).content)
            seen += len(body["results"])
            next_url, params = body["next"], None
        assert seen == CUSTOMERS
        return time.process_time() - started


def client(url: str, view: str = "records") -> float:
    with OmnitronClient(
        url,
        username="sandbox",
        password=SecretStr("sandbox"),
        page_size=PAGE,
        throttle=Throttle(1_000_000, 1),
        timeout_seconds=60,
    ) as omnitron:
        started, seen = time.process_time(), 0
        for page in omnitron.list_customers(CustomerQuery(sort="pk")):
            seen += len(getattr(page, view))
        assert seen == CUSTOMERS
        return time.process_time() - started


def main() -> None:
    with sandbox_process(CUSTOMERS) as url:
        bare(url), client(url)  # warm both paths up
        floor = min(bare(url) for _ in range(ROUNDS))
        ours = min(client(url) for _ in range(ROUNDS))
        dicts = min(client(url, "results") for _ in range(ROUNDS))
    per = 1e6 / CUSTOMERS
    print(
        f"client: {ours * per:.2f} us CPU/customer; bare httpx+orjson: {floor * per:.2f} us "
        f"-> ratio {ours / floor:.2f}x (target <= 1.5x) {'ok' if ours / floor <= 1.5 else 'OVER'}; "
        f"as exact dicts: {dicts * per:.2f} us ({dicts / floor:.2f}x)"
    )


if __name__ == "__main__":
    main()
