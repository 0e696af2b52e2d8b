"""The sandbox: a local, Omnitron-compatible customers API for the demo, tests and benchmarks.

It reproduces the endpoints of Omnitron's documented Customers API (``docs/omnitron-api.md``:
fields, filters, DRF formats and error bodies) over an in-memory store, and adds test modes (live
writers, bulk-update ties, shuffled ties, late commits, date-only filters, expiring tokens,
injected faults, lost PATCH answers) that are switched at start or at run time through the
``/_sandbox/`` admin API. Modes also vary what that API leaves open: the server's time zone for
bare dates, a ``sort`` it ignores, a capped ``limit``, and fields a newer Omnitron adds.

Production code never imports this package; only the CLI's ``sandbox`` and ``demo`` commands, the
tests and the benchmarks do.

Modules:
    records   field names, DRF value formats, one customer's stored form
    seed      deterministic, realistic seed customers
    index     a sorted set of integers, cheap to change: the store's indexes
    store     the compact in-memory store with its sorted indexes and late-commit queue
    queries   django-filter style filters and sort, parsed into index ranges and predicates
    listing   a parsed query answered from the narrower index, in result order
    serializer  DRF-style validation for POST, PUT and PATCH bodies
    modes     the switchable test modes
    faults    fault injection as an ASGI middleware
    app       the FastAPI application: API, auth and admin routes
    server    running the app in the foreground or in a background thread
"""

from sandbox.app import create_app
from sandbox.modes import FaultModes, SandboxModes
from sandbox.server import SandboxServer

__all__ = ["FaultModes", "SandboxModes", "SandboxServer", "create_app"]
