"""The Data Docs site under the lake's ``_reports/``: the results store it is built from, kept
within the retention, read as summaries for the index, and copied to and from a remote lake.

:class:`DocsSite` is the part of :class:`omnisync.validation.runner.Validator` that keeps the
site; the validator runs the suites and renders the pages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from omnisync.validation.suites import SuiteError, load_suite_json

REPORTS = "_reports"
DOCS = "data_docs"
DATA_DOCS = f"{REPORTS}/{DOCS}"
# validation results, one JSON per validated batch: the source the site is rebuilt from
RESULTS = "validation_results"


@contextlib.contextmanager
def keys_listed_once(store: Any, listed: list[Any] | None = None) -> Iterator[None]:
    """Within the block, ``store.list_keys()`` lists the store once (or answers ``listed``).

    GX lists the results store three times while it builds the site, each time walking the
    results folder and parsing every run's time with dateutil: at 30 days of hourly runs most of
    a build (docs/performance.md). Nothing in this process adds or removes a result during a
    build (the caller holds the validator's lock); a result another process writes meanwhile
    is listed by the next build, as it was when GX listed the store itself."""
    real = store.list_keys
    held: list[list[Any]] = [] if listed is None else [listed]

    def list_keys() -> list[Any]:
        if not held:
            held.append(real())
        return list(held[0])

    store.list_keys = list_keys
    try:
        yield
    finally:
        del store.list_keys


def store_without_row_lists(store: Any) -> None:
    """Keep each failing row list out of the stored result (the Data Docs' source).

    The run needs every failing row number (to flag or quarantine those rows), and reads them
    from the result GX returns; the Data Docs need the counts and the first rows only, which
    GX keeps in ``partial_unexpected_index_list``. Serializing full lists into the docs store
    costs time in proportion to the rows. The lists are taken out while the result is stored,
    then put back.
    """
    original = store.store_validation_results

    def store_validation_results(*, suite_validation_result: Any, **kwargs: Any) -> Any:
        taken: list[tuple[dict[str, Any], Any]] = []
        for item in suite_validation_result.results:
            if isinstance(item.result, dict) and "unexpected_index_list" in item.result:
                taken.append((item.result, item.result.pop("unexpected_index_list")))
        try:
            return original(suite_validation_result=suite_validation_result, **kwargs)
        finally:
            for result, rows in taken:
                result["unexpected_index_list"] = rows

    store.store_validation_results = store_validation_results


class DocsSite:
    """The site's results and files; the validator's context and folders are set by it."""

    _gx: Any
    _context: Any
    _suites_dir: Path
    _retention: dt.timedelta
    _reports_local: Path | None
    _reports_remote: str | None
    _pushed: dict[str, int]

    def _result_summary(
        self,
        expectation_suite_name: str,
        run_id: Any = None,
        batch_identifier: Any = None,
        validation_results_store_name: str | None = None,
        failed_only: bool = False,
    ) -> Any:
        """A stored result's outcome and meta, without its expectation results (for the index)."""
        import orjson
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
        )
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        key: Any = ValidationResultIdentifier(
            ExpectationSuiteIdentifier(expectation_suite_name), run_id, batch_identifier
        )
        store: Any = self._context.validation_results_store
        try:
            stored = orjson.loads(store.store_backend.get(key.to_tuple()))
        except Exception:  # GX's own getter answers {} for a result it cannot read
            return {}
        from omnisync.validation.pages import Status, outcome

        return ExpectationSuiteValidationResult(
            # the index shows three outcomes: failed, passed with warnings, passed
            success=cast(bool, Status(outcome(stored.get("results") or []))),
            results=[],
            suite_name=stored.get("suite_name") or expectation_suite_name,
            statistics=stored.get("statistics"),
            meta=stored.get("meta") or {},
        )

    def _forget_old_results(self) -> list[Any]:
        """Results older than the retention go; GX then drops their pages from the site.
        Returns the keys of the results kept."""
        store: Any = self._context.validation_results_store
        cutoff = dt.datetime.now(dt.UTC) - self._retention
        kept = []
        for key in store.list_keys():
            run_time = key.run_id.run_time
            if run_time.tzinfo is None:
                run_time = run_time.replace(tzinfo=dt.UTC)
            if run_time >= cutoff:
                kept.append(key)
                continue
            store.remove_key(key)
            if self._reports_remote:
                import fsspec

                relative = "/".join(key.to_tuple()) + ".json"
                fs, path = fsspec.core.url_to_fs(f"{self._reports_remote}/{RESULTS}")
                fs.rm(f"{path}/{relative}", recursive=False)
        return kept

    def _add_every_suite(self) -> list[Any]:
        """Every suite of the directory, so that a run validating one suite keeps the pages of
        the others (GX drops a suite's page when its context does not hold the suite); returns
        their identifiers, for their pages to be rendered."""
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        held = {suite.name for suite in self._context.suites.all()}
        for path in sorted(self._suites_dir.glob("*.json")):
            if path.stem in held:
                continue
            try:
                suite = self._gx.ExpectationSuite(**load_suite_json(path.stem, self._suites_dir))
                self._context.suites.add(suite)
            except (SuiteError, TypeError, ValueError):
                continue  # a broken suite fails the run that uses it, not the docs
        return [ExpectationSuiteIdentifier(s.name) for s in self._context.suites.all()]

    def _pull_reports(self) -> None:
        """A remote lake's results and pages, fetched so that the rebuilt index still lists
        earlier runs (GX lists the pages it finds in the site). Bounded by the retention.

        Only ``data_docs/`` and ``validation_results/``: the rest of ``_reports/`` (each
        reconciliation's CSVs, with their match keys) is no business of a validator, and is
        not copied into a temporary directory of every process that validates."""
        import fsspec

        assert self._reports_local is not None
        assert self._reports_remote is not None
        fs, path = fsspec.core.url_to_fs(self._reports_remote)
        for part in (DOCS, RESULTS):
            if fs.exists(f"{path}/{part}"):
                (self._reports_local / part).mkdir(parents=True, exist_ok=True)
                fs.get(f"{path}/{part}/", str(self._reports_local / part), recursive=True)
        self._pushed = self._local_files()

    def _local_files(self) -> dict[str, int]:
        assert self._reports_local is not None
        return {
            str(p.relative_to(self._reports_local)): p.stat().st_size
            for p in self._reports_local.rglob("*")
            if p.is_file()
        }

    def _push_changed(self) -> None:
        """Upload to a remote lake what this process added or changed under ``_reports/``
        (its results and pages, the index when rebuilt): not the history it pulled."""
        if not self._reports_remote or self._reports_local is None:
            return
        import fsspec

        fs, path = fsspec.core.url_to_fs(self._reports_remote)
        now = self._local_files()
        for relative, size in sorted(now.items()):
            if self._pushed.get(relative) != size or relative.endswith("index.html"):
                fs.put_file(str(self._reports_local / relative), f"{path}/{relative}")
        self._pushed = now
