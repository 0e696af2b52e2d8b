"""The layout is the architecture: imports point inward, checked on every module's source.

Flows use everything; transforms are pure (no Prefect, no HTTP, no client, no lake); the client
knows no Prefect, pandas, lake, settings or transforms (it takes its options as arguments and
decodes JSON itself); the write-back knows nothing of the sync; whoever reads customers by pk
ranges (the sync, the write-back guard, ``verify``) gets that reading from the client's
paginator; the library's steps know no orchestration; production code never imports the
sandbox, except the two commands that run it (``sandbox`` and ``demo``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


RULES = [
    ("transforms", ("prefect", "httpx", "omnisync", "flows", "sandbox", "fsspec", "sqlalchemy")),
    (
        "omnisync/client",
        (
            "prefect",
            "pandas",
            "omnisync.lake",
            "omnisync.sync",
            "omnisync.settings",
            "transforms",
            "flows",
            "sandbox",
        ),
    ),
    ("omnisync/sync", ("prefect", "flows", "sandbox")),
    ("omnisync/lake", ("prefect", "httpx", "omnisync.client", "flows", "sandbox")),
    ("omnisync/state", ("prefect", "httpx", "flows", "sandbox")),
    ("omnisync/validation", ("prefect", "httpx", "flows", "sandbox")),
    ("omnisync/erp", ("prefect", "flows", "sandbox", "omnisync.sync")),
    ("omnisync/verify", ("prefect", "flows", "sandbox", "pandas")),
]


@pytest.mark.parametrize(("folder", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_imports_point_inward(folder: str, forbidden: tuple[str, ...]) -> None:
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(folder)
        for name in imports(path)
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    ]
    assert broken == []


def test_production_code_never_imports_the_sandbox_outside_the_commands_that_run_it() -> None:
    allowed = {ROOT / "omnisync" / "commands" / "sandbox.py", ROOT / "omnisync" / "demo.py"}
    broken = [
        str(path.relative_to(ROOT))
        for folder in ("omnisync", "flows", "transforms")
        for path in modules(folder)
        if path not in allowed and any(n.split(".")[0] == "sandbox" for n in imports(path))
    ]
    assert broken == []


def test_only_the_lease_module_holds_locks_and_fences() -> None:
    """G5's argument is made in one pair of modules: only ``omnisync/state/lease.py`` (the lock)
    and ``omnisync/state/fence.py`` (the proof it is still held) define the lease or the fence,
    read or write the lock table, or stamp the database's clock. The other modules use a fence
    only through ``Fence.touch``, ``Fence.check`` or ``fenced``."""
    state = ROOT / "omnisync" / "state"
    lease, fence = state / "lease.py", state / "fence.py"
    # the table is declared in the schema and created by the migrations, and used nowhere else
    declared = {lease, fence, state / "schema.py", *(state / "migrations").rglob("*.py")}
    broken = []
    for path in modules("omnisync"):
        if path in declared:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.ClassDef) and node.name in ("Fence", "Lease")) or (
                isinstance(node, ast.FunctionDef)
                and node.name
                in (
                    "lease_clock",
                    "database_now_us",
                    "try_lock",
                    "locked",
                    "fenced",
                )
            ):
                broken.append(f"{path.relative_to(ROOT)} defines {node.name}")
            elif isinstance(node, ast.ImportFrom) and node.module == "omnisync.state.schema":
                if any(alias.name == "locks" for alias in node.names):
                    broken.append(f"{path.relative_to(ROOT)} imports the lock table")
            elif isinstance(node, ast.Constant) and node.value == "omnisync_locks":
                broken.append(f"{path.relative_to(ROOT)} names the lock table")
    assert broken == []
    assert "class Lease" in lease.read_text(encoding="utf-8")
    assert "class Fence" in fence.read_text(encoding="utf-8")


# What reading customers by pk ranges is made of: the paginator and its parts.
RANGE_READING = frozenset(
    {"Paginator", "PkRange", "Density", "carve", "split", "split_points", "server_bounds"}
    | {"parse_modified", "WEST", "EAST"}
)


def test_pk_ranges_are_read_through_the_clients_paginator_alone() -> None:
    """The sync, the write-back guard and ``verify`` import range reading from the client, so
    there is one reader to trust (and test against a server that changes under it)."""
    broken = []
    for path in modules("omnisync"):
        if path.is_relative_to(ROOT / "omnisync" / "client"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {alias.name for alias in node.names} & RANGE_READING
                if names and node.module not in (
                    "omnisync.client",
                    "omnisync.client.paginator",
                    "omnisync.client.dates",
                ):
                    broken.append(
                        f"{path.relative_to(ROOT)} imports {sorted(names)} from {node.module}"
                    )
    assert broken == []
    assert not (ROOT / "omnisync" / "sync" / "extraction.py").exists()
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in modules("omnisync")
        if any(
            isinstance(node, ast.ImportFrom)
            and node.module in ("omnisync.client", "omnisync.client.paginator")
            and "Paginator" in {alias.name for alias in node.names}
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert {
        "omnisync/sync/window.py",
        "omnisync/erp/change_guard.py",  # the write-back's listing of what changed
        "omnisync/verify/counts.py",
    } <= readers


#: the longest a module may grow: small modules, each named after what it holds
MAX_MODULE_LINES = 320


def test_every_module_is_small() -> None:
    """No module of the library or of its pure transforms (vendored Data Docs files aside: they
    are not Python) is longer than :data:`MAX_MODULE_LINES` lines; a longer one is split by what
    it holds."""
    long = {
        str(path.relative_to(ROOT)): lines
        for path in [*modules("omnisync"), *modules("transforms")]
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_a_run_context_comes_from_one_factory_and_no_writer_is_patched() -> None:
    """A run's collaborators are opened by ``open_run`` (``omnisync/sync/context.py``), the one
    factory, and Dask workers open theirs from it too: no bag of parts with a process-global
    registry beside it. A lake writer gets its guard when it is made (``LakeStorage(...,
    guard=...)`` or ``guarded``): nothing assigns ``.guard``, nor another object's ``._guard``."""
    broken = []
    for folder in ("omnisync", "flows", "tests", "bench"):
        for path in modules(folder):
            if path == Path(__file__).resolve():
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Name | ast.Attribute | ast.ClassDef | ast.FunctionDef):
                    name = getattr(node, "id", None) or getattr(node, "attr", None)
                    name = name or getattr(node, "name", None)
                    if name in ("RunParts", "_by_run", "parts_for"):
                        broken.append(f"{path.relative_to(ROOT)} names {name}")
                if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if not isinstance(target, ast.Attribute):
                            continue
                        on_self = isinstance(target.value, ast.Name) and target.value.id == "self"
                        if target.attr == "guard" or (
                            target.attr == "_guard" and not on_self and path.name != "storage.py"
                        ):
                            broken.append(f"{path.relative_to(ROOT)} assigns .{target.attr}")
    assert broken == []
    assert not (ROOT / "omnisync" / "sync" / "parts.py").exists()
    factories = [
        path.relative_to(ROOT).as_posix()
        for path in modules("omnisync")
        if "def open_run(" in path.read_text(encoding="utf-8")
    ]
    assert factories == ["omnisync/sync/context.py"]
