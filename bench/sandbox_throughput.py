"""How fast the sandbox serves pages, so that client benchmarks measure the client, not the server.

Target: pages of 1,000 customers at 30,000 customers/s or more.
"""

from __future__ import annotations

import time

import httpx
import orjson

from sandbox import SandboxServer

CUSTOMERS = 200_000
PAGE = 1000


def run() -> dict[str, float]:
    started = time.perf_counter()
    with SandboxServer(customers=CUSTOMERS, seed=7) as server:
        seeded = time.perf_counter() - started
        client = httpx.Client(base_url=server.url, timeout=60)
        key = client.post(
            "/api/v1/auth/login/", json={"username": "sandbox", "password": "sandbox"}
        )
        client.headers["Authorization"] = f"Token {key.json()['key']}"
        results = {"seed_seconds": seeded}
        for label, params in (
            ("by pk", {"sort": "pk"}),
            (
                "modified_date window",
                {"sort": "modified_date", "modified_date__gte": "2017-01-01T00:00:00Z"},
            ),
        ):
            served = 0
            begin = time.perf_counter()
            for page in range(1, CUSTOMERS // PAGE + 1):
                response = client.get(
                    "/api/v1/customers/", params={**params, "limit": PAGE, "page": page}
                )
                served += len(orjson.loads(response.content)["results"])
            elapsed = time.perf_counter() - begin
            assert served == CUSTOMERS
            results[f"customers/s ({label})"] = served / elapsed
        client.close()
    return results


def main() -> None:
    results = run()
    print(f"sandbox: seeded {CUSTOMERS:,} customers in {results.pop('seed_seconds'):.1f} s")
    for label, rate in results.items():
        verdict = "ok" if rate >= 30_000 else "BELOW TARGET"
        print(f"sandbox: {label}: {rate:,.0f}  (target 30,000; {rate / 30_000:.1f}x) {verdict}")


if __name__ == "__main__":
    main()
