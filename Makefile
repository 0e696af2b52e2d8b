# Two commands for a newcomer: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_PREFERENCE := only-system
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_EXTRA_LOGGERS ?= omnisync
export PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW ?= ignore
export PREFECT_LOGGING_LEVEL ?= WARNING
# A loaded machine can take longer than Prefect's default 20 s to start a temporary API server.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: install test test-e2e lint typecheck unit demo bench clean docs-assets

# uv is bootstrapped into .tools/ when it is not on PATH: nothing is asked, nothing global changes.
.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --compile-bytecode: without it the suite's processes compile the same modules side by side on
# first import, which made a clean make test slower (docs/performance.md). The project's own
# modules are compiled too (an editable install is not): where PYTHONDONTWRITEBYTECODE is set,
# every command compiled its hundred modules again, about 0.1 CPU-s a run.
install: $(UV)
	$(UV) sync --locked --quiet --compile-bytecode
	$(UV) run --locked python -m compileall -q omnisync flows transforms sandbox

lint: install
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck: install
	$(UV) run --locked mypy

# Three workers on two cores: a test waiting on a server, a subprocess or a clock leaves its
# core to another. Tests of one shared database stay on one worker; every worker uses one Prefect
# server that the controller starts (tests/conftest.py).
unit: install
	$(UV) run --locked pytest -n 3 --dist loadgroup

# mypy runs beside the tests: they leave part of a core idle while they wait on servers.
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck unit

# prefect.yaml deployed to a real Prefect server and run by a process worker, the SIGKILL
# scenario of tests/sync/test_crash_recovery.py and the local Dask cluster of tests/sync/test_dask.py
# (.ci/run calls it)
test-e2e: install
	$(UV) run --locked pytest -m e2e -n 3 --dist loadgroup

demo: install
	$(UV) run --locked omnisync demo

bench: install
	$(UV) run --locked python -m bench

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache .omnisync lake

# The Data Docs' front-end files, from the npm registry at the versions pinned in
# omnisync/validation/vendored_assets.py (run after changing one; the result is committed).
docs-assets: install
	$(UV) run --locked python scripts/vendor_docs_assets.py
