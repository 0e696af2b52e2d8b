"""Data Docs: every run's pages kept within the retention, and the site works with the network off."""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from pathlib import Path
from typing import Any

import great_expectations
import pyarrow as pa
import pytest

from omnisync.validation import Validator, runner, validate_customers
from omnisync.validation.offline_docs import CompiledTemplates, OfflinePageView, cdn_addresses
from omnisync.validation.vendored_assets import (
    ASSETS,
    ASSETS_DIR,
    local_addresses,
    read_lock,
    sha256,
)
from tests.browser import install_chromium, offline_chromium
from tests.validation.test_customers_suite import clean_records, typed
from transforms.quality import validation_frame

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view"


def site(lake: Path) -> Path:
    return lake / "_reports" / "data_docs"


def run_names(lake: Path) -> set[str]:
    """The run names the index lists (GX writes them into the index's table data)."""
    text = (site(lake) / "index.html").read_text()
    return set(re.findall(r"run-[a-z0-9-]+", text))


def validated(lake: Path, run_name: str) -> Validator:
    """A run's validator (each process builds its own) after it validated five customers."""
    validator = Validator(str(lake))
    validate_customers(validator, typed(clean_records(5)), run_name)
    return validator


def test_every_cdn_address_of_gx_has_a_shipped_file() -> None:
    """A GX upgrade that loads a new file from a CDN fails here, not in a reader's browser."""
    found = {
        url
        for path in GX_TEMPLATES.rglob("*")
        if path.suffix in {".j2", ".css"}
        for url in cdn_addresses(path.read_text(encoding="utf-8"))
    }
    assert found, "GX's templates were read"
    assert found <= set(local_addresses()), sorted(found - set(local_addresses()))


def test_shipped_files_are_the_registry_files_in_the_lock() -> None:
    """Every shipped file is listed with its sha256, under a package pinned with the
    registry's integrity; nothing is added or edited by hand."""
    lock = read_lock()
    shipped = {
        path.relative_to(ASSETS_DIR).as_posix()
        for path in ASSETS_DIR.rglob("*")
        if path.is_file() and path.name != "lock.json"
    }
    assert shipped == set(lock["files"])
    for name, digest in lock["files"].items():
        assert sha256(ASSETS_DIR / name) == digest, f"{name} differs from the registry's file"
    for asset in ASSETS:
        pinned = lock["packages"][f"{asset.package}@{asset.version}"]
        assert pinned["integrity"].startswith("sha512-")
        assert pinned["tarball"].startswith(lock["registry"])
        if not asset.path.endswith("/"):
            assert asset.local in lock["files"]


def test_every_run_stays_listed_and_old_runs_go_after_the_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run builds its own context (as each process does); the site still lists the runs
    before it, a run of another suite keeps them, and results older than the retention go."""
    monkeypatch.setattr(runner, "INDEX_EVERY", dt.timedelta(0))  # every run rebuilds the index
    first = validated(tmp_path, "run-first")
    first.publish_docs()
    second = validated(tmp_path, "run-second")
    second.publish_docs()
    assert run_names(tmp_path) == {"run-first", "run-second"}

    # a reconcile validates only the ERP suites: the customers pages and suite stay
    third = Validator(str(tmp_path))
    erp = pa.table({"erp_code": ["E-1", "E-2"], "customer_id": ["1", "2"]})
    third.validate("erp_codes", validation_frame(erp), "run-erp")
    third.publish_docs()
    assert run_names(tmp_path) == {"run-first", "run-second", "run-erp"}
    assert (site(tmp_path) / "expectations" / "customers.html").exists()

    results = tmp_path / "_reports" / "validation_results" / "customers" / "run-first"
    (only,) = results.iterdir()
    only.rename(results / "20200101T000000.000000Z")  # the first run, made six years old
    fourth = Validator(str(tmp_path), retention_days=30)
    fourth.publish_docs()
    assert run_names(tmp_path) == {"run-second", "run-erp"}
    pages = site(tmp_path) / "validations" / "customers"
    assert not list((pages / "run-first").rglob("*.html")), "the old run's page is removed"
    assert list((pages / "run-second").rglob("*.html"))


def test_an_index_build_lists_the_results_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GX lists the results store several times per build, each time walking the folder and
    parsing every run's time (at 720 kept results: 0.33 -> 0.13 CPU-s for the build once
    listed); the site it builds is the same."""
    monkeypatch.setattr(runner, "INDEX_EVERY", dt.timedelta(0))  # every run rebuilds the index
    first = validated(tmp_path, "run-first")
    first.publish_docs()
    second = validated(tmp_path, "run-second")
    backend = second._context.validation_results_store.store_backend
    listings = []
    real = backend.list_keys
    monkeypatch.setattr(backend, "list_keys", lambda *a: listings.append(a) or real(*a))
    second.publish_docs()
    assert len(listings) == 1, "listed once, to forget results past the retention"
    assert run_names(tmp_path) == {"run-first", "run-second"}
    assert "list_keys" not in vars(second._context.validation_results_store)


def test_a_run_that_only_passed_renders_its_pages_and_leaves_the_index_for_later(
    tmp_path: Path,
) -> None:
    """The index costs time in proportion to the history: a passing run renders only its own
    pages, a run with a failing expectation rebuilds the index at once."""
    first = Validator(str(tmp_path))
    validate_customers(first, typed(clean_records(5)), "run-first")
    first.publish_docs()  # no index yet: built
    passing = Validator(str(tmp_path))
    validate_customers(passing, typed(clean_records(5)), "run-passing")
    passing.publish_docs()
    assert run_names(tmp_path) == {"run-first"}, "the index waits for its next rebuild"
    assert list((site(tmp_path) / "validations" / "customers" / "run-passing").rglob("*.html"))
    flagged = clean_records(5)
    flagged[0]["email"] = "not-an-email"
    failing = Validator(str(tmp_path))
    validate_customers(failing, typed(flagged), "run-flagged")
    failing.publish_docs()
    assert run_names(tmp_path) == {"run-first", "run-passing", "run-flagged"}


def test_compiled_templates_are_reused_and_a_cache_that_cannot_be_written_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GX compiles its page templates in every process (0.4-0.7 CPU-s of a run); they are kept
    in Jinja's per-user cache. A cache that cannot be written never fails the docs."""
    from omnisync.validation import offline_docs

    cache = tmp_path / "compiled"
    cache.mkdir()
    monkeypatch.setattr(offline_docs, "_bytecode_cache", lambda: CompiledTemplates(str(cache)))
    lake = tmp_path / "lake"
    validator = Validator(str(lake))
    validate_customers(validator, typed(clean_records(5)), "run-cached")
    validator.publish_docs()
    compiled = {path.name for path in cache.iterdir()}
    assert compiled, "the site's templates were compiled into the cache"
    view = OfflinePageView()
    assert view.env.bytecode_cache is not None

    cache.rename(tmp_path / "gone")  # the directory vanishes under a run
    monkeypatch.setattr(offline_docs, "_bytecode_cache", lambda: CompiledTemplates(str(cache)))
    failing = Validator(str(lake))
    validate_customers(failing, typed(clean_records(5)), "run-uncached")
    assert failing.publish_docs() is not None
    assert list((site(lake) / "validations" / "customers" / "run-uncached").rglob("*.html"))


@pytest.fixture(scope="module")
def chromium() -> str:
    executable = install_chromium()
    if executable is None:
        message = (
            "NO CHROMIUM: the offline Data Docs check did not run. Install Debian's `chromium` "
            "(apt-get install chromium) or put a Chromium on PATH."
        )
        warnings.warn(message, stacklevel=1)
        os.write(2, f"\n\n{'!' * 80}\n{message}\n{'!' * 80}\n\n".encode())
        pytest.skip(message)
    return executable


def test_data_docs_are_styled_and_navigable_with_the_network_off(
    chromium: str, tmp_path: Path
) -> None:
    validator = Validator(str(tmp_path))
    validate_customers(validator, typed(clean_records(10)), "run-clean")
    flagged = clean_records(10)
    flagged[0]["email"] = "not-an-email"
    validate_customers(validator, typed(flagged), "run-flagged")
    index = Path(validator.publish_docs() or "")
    pages = sorted((site(tmp_path) / "validations").rglob("*.html"))
    assert len(pages) == 2
    for page in [index, *pages]:
        text = page.read_text()
        loaded = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert loaded == [], f"{page.name} loads {loaded}"

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with offline_chromium(chromium) as browser:
        tab = browser.new_page()
        tab.open(index.as_uri())
        # The list of validations is drawn by bootstrap-table's script after load.
        rows = tab.wait_for(
            "Array.from(document.querySelectorAll('table tbody tr'))"
            ".map(r => r.innerText).filter(t => t.includes('run-')).length"
        )
        assert rows == 2, "the index lists both runs"
        listed = tab.evaluate("document.body.innerText")
        assert "run-clean" in listed and "run-flagged" in listed
        assert tab.evaluate("typeof jQuery === 'function' && typeof jQuery.fn.bootstrapTable")
        assert tab.screenshot(shots / "index.png").stat().st_size > 10_000

        tab.open(pages[0].as_uri())
        fonts = tab.evaluate(
            "document.fonts.ready.then(() => Array.from(document.fonts)"
            ".filter(f => f.status === 'loaded').map(f => f.family))"
        )
        assert any("Font Awesome" in family for family in fonts), fonts
        icons = tab.evaluate(
            "Array.from(document.querySelectorAll('.fa-check-circle, .fa-times')).map(e => {"
            " const s = getComputedStyle(e, '::before');"
            " return [e.className, s.fontFamily, s.content, getComputedStyle(e).color]; })"
        )
        assert icons, "the page has pass/fail icons"
        for name, family, content, colour in icons:
            assert "Font Awesome" in family and content not in ("none", ""), name
            assert colour != "rgb(0, 0, 0)", f"{name} is coloured by Bootstrap"
        styling = tab.evaluate(
            "[getComputedStyle(document.querySelector('.navbar')).display,"
            " getComputedStyle(document.body).fontFamily]"
        )
        assert styling[0] == "flex" and "Times" not in styling[1], styling
        assert tab.screenshot(shots / "validation.png").stat().st_size > 10_000


def test_a_remote_lake_keeps_the_history_and_uploads_only_what_a_run_adds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On an object store the site is built locally: a run fetches the earlier results and
    pages (so the index lists them) and uploads only its own files and the index."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    lake = "memory://remote-docs-lake"
    fs = fsspec.filesystem("memory")
    uploads: list[str] = []
    original = MemoryFileSystem.put_file

    def counted(self: Any, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> Any:
        uploads.append(rpath)
        return original(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "put_file", counted)
    first = Validator(lake)
    validate_customers(first, typed(clean_records(5)), "run-remote-one")
    first.publish_docs()
    first.close()
    first_uploads = len(uploads)
    uploads.clear()
    flagged = clean_records(5)
    flagged[0]["email"] = "not-an-email"  # a failing expectation: the index is rebuilt
    second = Validator(lake)
    validate_customers(second, typed(flagged), "run-remote-two")
    second.publish_docs()
    second.close()
    index = fs.cat(f"{lake}/_reports/data_docs/index.html").decode()
    assert "run-remote-one" in index and "run-remote-two" in index
    assert not any("run-remote-one" in path for path in uploads), "history is not re-uploaded"
    assert any("run-remote-two" in path for path in uploads)
    assert len(uploads) < first_uploads, "the vendored assets go up once"


def test_warnings_are_shown_as_warnings_and_pages_name_the_asset_without_internals(
    tmp_path: Path,
) -> None:
    """Only a critical failure is "failed"; a batch whose rows were only flagged passed with
    warnings, in the index and on its page. Pages name the asset and show the lake's columns,
    not the ones derived for validation (_row, _channel_key, _phone_valid)."""
    validator = Validator(str(tmp_path))
    validate_customers(validator, typed(clean_records(10)), "run-clean")
    flagged = clean_records(10)
    flagged[0]["email"] = "not-an-email"
    validate_customers(validator, typed(flagged), "run-flagged")
    twice = clean_records(10)
    twice[1]["channel_code"] = twice[0]["channel_code"]  # channel_code unique per channel
    twice[1]["channel"] = twice[0]["channel"]
    validate_customers(validator, typed(twice), "run-refused")
    index = Path(validator.publish_docs() or "").read_text()

    def row_of(run: str) -> str:
        """One row of the index's table data (GX writes it as a Python literal)."""
        (row,) = [r for r in index.split("{'validation_success':") if f"'{run}'" in r]
        return row

    assert "fa-check-circle" in row_of("run-clean")
    flagged_row = row_of("run-flagged")
    assert "fa-exclamation-triangle text-warning" in flagged_row
    assert "'_validation_success_text': 'Warnings'" in flagged_row
    assert "fa-times" in row_of("run-refused")
    assert "'_validation_success_text': 'Failed'" in row_of("run-refused")

    pages = {
        page.parts[-3]: page.read_text()
        for page in (site(tmp_path) / "validations" / "customers").rglob("*.html")
    }
    shown = {run: re.sub(r"<[^>]+>", " ", text) for run, text in pages.items()}
    assert "Passed with warnings" in shown["run-flagged"]
    assert "Succeeded" in shown["run-clean"] and "Failed" in shown["run-refused"]
    outcomes = {run: validator.pages(run)[0].outcome for run in shown}
    assert outcomes == {"run-clean": "passed", "run-flagged": "warnings", "run-refused": "failed"}
    for run, text in shown.items():
        assert "Data asset: None" not in text and "customers (a window" in text, run
        for internal in ("_row", "_channel_key", "_phone_valid"):
            assert internal not in text, (run, internal)


def test_a_validator_on_a_remote_lake_pulls_only_the_validation_reports() -> None:
    """Of a remote lake's ``_reports/``, a validator fetches its pages and results, never the
    reconciliations' CSVs (match keys, ERP codes) into a temporary directory."""
    import fsspec

    memory = fsspec.filesystem("memory")
    root = "/pull-only-reports/_reports"
    memory.pipe(f"{root}/reconciliation/run=1/planned.csv", b"pk,email\n1,a@b.test\n")
    memory.pipe(f"{root}/data_docs/earlier.html", b"<html>an earlier page</html>")
    memory.pipe(f"{root}/validation_results/customers/earlier.json", b"{}")
    validator = Validator("memory://pull-only-reports")
    try:
        local = validator._reports_local
        assert local is not None
        pulled = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
        assert "data_docs/earlier.html" in pulled
        assert "validation_results/customers/earlier.json" in pulled
        assert not any(p.startswith("reconciliation") for p in pulled), pulled
    finally:
        validator.close()
        memory.rm("/pull-only-reports", recursive=True)
