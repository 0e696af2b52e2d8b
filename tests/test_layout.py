"""The layout is the architecture: imports point inward, checked on every module's source.

Flows use everything; transforms are pure (no Prefect, no HTTP, no client, no lake); the client
knows no Prefect, pandas or lake; the library's steps know no orchestration; production code
never imports the sandbox, except the two commands that run it (``sandbox`` and ``demo``).
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
        ("prefect", "pandas", "omnisync.lake", "omnisync.sync", "flows", "sandbox"),
    ),
    ("omnisync/sync", ("prefect", "flows", "sandbox")),
    ("omnisync/lake", ("prefect", "httpx", "omnisync.client", "flows", "sandbox")),
    ("omnisync/state", ("prefect", "httpx", "flows", "sandbox")),
    ("omnisync/validation", ("prefect", "httpx", "flows", "sandbox")),
    ("omnisync/erp", ("prefect", "flows", "sandbox")),
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
    allowed = {ROOT / "omnisync" / "cli.py", ROOT / "omnisync" / "demo.py"}
    broken = [
        str(path.relative_to(ROOT))
        for folder in ("omnisync", "flows", "transforms")
        for path in modules(folder)
        if path not in allowed and any(n.split(".")[0] == "sandbox" for n in imports(path))
    ]
    assert broken == []


def test_only_the_lease_module_holds_locks_and_fences() -> None:
    """G5's argument is made in one module: only ``omnisync/state/lease.py`` defines the fence,
    reads or writes the lock table, or stamps the database's clock. The other modules use a
    fence only through ``Fence.touch``, ``Fence.check`` or ``fenced``."""
    state = ROOT / "omnisync" / "state"
    lease = state / "lease.py"
    # the table is declared in the schema and created by the migrations, and used nowhere else
    declared = {lease, state / "schema.py", *(state / "migrations").rglob("*.py")}
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
                    "_database_now_us",
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
    assert "class Fence" in lease.read_text(encoding="utf-8")
