"""prefect.yaml as an operator runs it: a real Prefect server, ``prefect deploy --all``, a process
worker, and each deployment's run through that worker, against the sandbox over real HTTP.

About 1.5 minutes: it runs in ``make test-e2e`` (which ``.ci/run`` calls after ``make test``).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import SandboxServer
from tests.conftest import truth

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Prefect:
    """A Prefect server of the test's own, and the commands an operator types against it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.api = f"http://127.0.0.1:{free_port()}/api"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OMNI"))},
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Runs are started by the test, not by the schedules prefect.yaml declares.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "omnisync",
        }
        self.http = httpx.Client(base_url=self.api, timeout=30)
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Path:
        log = self.home / f"{name}.log"
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((process, log))
        return log

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def wait_healthy(self, log: Path) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the Prefect server did not start:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        for process, _ in reversed(self.processes):
            with_group = os.getpgid(process.pid)
            os.killpg(with_group, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(with_group, signal.SIGKILL)
                process.wait(timeout=20)
        self.http.close()

    def deployments(self) -> dict[str, dict[str, Any]]:
        found = self.http.post("/deployments/filter", json={}).raise_for_status().json()
        return {d["name"]: d for d in found}

    def create_flow_run(self, deployment: dict[str, Any]) -> str:
        """A new run of ``deployment``. A loaded server can answer 503 (its database busy); that
        answer may come after the run was made, so it is looked for before asking again."""
        for _ in range(5):
            created = self.http.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
            if created.status_code != 503:
                return str(created.raise_for_status().json()["id"])
            made = self.http.post(
                "/flow_runs/filter",
                json={  # a run made by hand, not one its schedule made
                    "flow_runs": {"auto_scheduled": {"eq_": False}},
                    "deployments": {"id": {"any_": [deployment["id"]]}},
                },
            )
            if made.status_code == 200 and made.json():
                return str(made.json()[0]["id"])
            time.sleep(1)  # the server said it is busy: give it a moment before asking again
        created.raise_for_status()
        raise AssertionError("unreachable")

    def run_deployment(self, deployment: dict[str, Any], worker_log: Path) -> dict[str, Any]:
        """Start one run and wait, driven by the run's own state, until it ends."""
        run_id = self.create_flow_run(deployment)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.http.get(f"/flow_runs/{run_id}").raise_for_status().json()
            if run["state_type"] in TERMINAL:
                return run
            time.sleep(0.5)
        raise AssertionError(f"{deployment['name']} did not end:\n{worker_log.read_text()[-4000:]}")

    def artifact_keys(self, run_id: str) -> set[str]:
        found = self.http.post(
            "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        )
        return {a["key"] for a in found.raise_for_status().json() if a.get("key")}


@pytest.fixture
def prefect(tmp_path: Path) -> Iterator[Prefect]:
    home = tmp_path / "prefect"
    home.mkdir()
    server = Prefect(home)
    port = server.api.rsplit(":", 1)[1].split("/")[0]
    log = server.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
    )
    try:
        server.wait_healthy(log)
        yield server
    finally:
        server.stop()


def erp_database(path: Path, server: SandboxServer, changed_pk: int) -> str:
    """The ERP as the deployment's query expects it: every linked customer's code as Omnitron
    has it, and one that finance changed."""
    rows = [(r["pk"], r["erp_code"]) for r in truth(server) if r["erp_code"] is not None]
    with sqlite3.connect(path) as db:
        db.execute("create table erp_customers (customer_id integer, account_no text)")
        db.executemany("insert into erp_customers values (?, ?)", rows)
        db.execute(
            "update erp_customers set account_no = 'FROM-FINANCE' where customer_id = ?",
            (changed_pk,),
        )
    return f"sqlite:///{path}"


def test_prefect_yaml_deploys_and_each_deployment_runs_through_a_process_worker(
    prefect: Prefect, make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # Deploying without OMNISYNC_HOME stops at once, with one line and nothing registered.
    assert prefect.run("work-pool", "create", "omnisync", "--type", "process").returncode == 0
    missing = prefect.run("--no-prompt", "deploy", "--all")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert missing.stderr.strip().splitlines() == [
        "error: OMNISYNC_HOME is not set: deploy from the omnisync checkout that the worker "
        "runs from with `OMNISYNC_HOME=$PWD prefect deploy --all`"
    ]
    assert "Traceback" not in missing.stdout + missing.stderr
    assert prefect.deployments() == {}

    deployed = prefect.run("--no-prompt", "deploy", "--all", env={"OMNISYNC_HOME": str(ROOT)})
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = prefect.deployments()
    assert set(deployments) == {
        "customers-full-refresh",
        "customers-incremental",
        "verify-customers",
        "erp-reconcile",
    }

    server = make_sandbox(customers=800)
    changed = next(r["pk"] for r in truth(server) if r["erp_code"] is not None)
    erp_url = erp_database(tmp_path / "erp.db", server, changed)
    secret = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from prefect.blocks.system import Secret; "
            "Secret(value=sys.argv[1]).save('omnisync-erp-url', overwrite=True)",
            erp_url,
        ],
        env=prefect.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert secret.returncode == 0, secret.stderr

    worker_log = prefect.start(
        "worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", "omnisync", "--type", "process"],
        env={
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "OMNITRON_URL": server.url,
            "OMNITRON_USERNAME": "sandbox",
            "OMNITRON_PASSWORD": "sandbox",
            "OMNISYNC_LAKE": str(tmp_path / "lake"),
            "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
            "OMNISYNC_LAG_SECONDS": "0",
            "OMNISYNC_LOG_LEVEL": "INFO",
        },
    )
    expected_artifacts = {
        "customers-full-refresh": "sync-customers",
        "customers-incremental": "sync-customers",
        "erp-reconcile": "reconcile-erp-codes",
    }
    runs = {}
    for name, artifact in expected_artifacts.items():
        run = runs[name] = prefect.run_deployment(deployments[name], worker_log)
        assert run["state_type"] == "COMPLETED", (
            f"{name}: {run['state_type']} {run['state'].get('message')}\n"
            + worker_log.read_text()[-4000:]
        )
        assert artifact in prefect.artifact_keys(run["id"]), name
    codes = {r["pk"]: r["erp_code"] for r in truth(server)}
    assert codes[changed] == "FROM-FINANCE", "the nightly write-back reached Omnitron"
    assert (tmp_path / "lake" / "customers").is_dir()
    # Arrow reads ARROW_DEFAULT_MEMORY_POOL once, when pyarrow is first imported: a flow run
    # that imported it before omnisync would keep Arrow's C++ code on mimalloc, and say so.
    said = prefect.run("flow-run", "logs", runs["customers-full-refresh"]["id"]).stdout
    assert "window [" in said, "OMNISYNC_LOG_LEVEL=INFO: omnisync's own lines are in the run's logs"
    assert "Arrow was loaded with its" not in said
