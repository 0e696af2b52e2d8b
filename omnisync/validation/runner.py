"""Running GX suites: one ephemeral context per process run, suites loaded from reviewable JSON.

What a failure means is read from each expectation: ``severity`` (critical, warning, info) and
``meta.scope`` (``row``: the failing rows are named, by their ``_row`` number; ``batch``: the
batch as a whole). Results are matched by the expectation's ``meta.name``, since GX does not keep
the suite's order.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from omnisync.settings import without_userinfo
from transforms.quality import only_checked

if TYPE_CHECKING:
    from omnisync.settings import Settings

log = logging.getLogger("omnisync.validation")
# GX parses suite parameters with a module-level pyparsing grammar, which is not thread-safe:
# two threads validating at once (even on two contexts) broke it for the whole process. Every
# call into GX takes this one process-wide lock.
_GX_LOCK = threading.Lock()
ROW = "_row"
DEFAULT_SUITES = Path(__file__).resolve().parents[2] / "expectations"
REPORTS = "_reports"
_DOCS = "data_docs"
DATA_DOCS = f"{REPORTS}/{_DOCS}"
# validation results, one JSON per validated batch: the source the site is rebuilt from
_RESULTS = "validation_results"
_RESULTS_STORE = "omnisync_validation_results"
_SITE = "omnisync"
#: a run whose validations all passed rebuilds the index only when it is older than this
INDEX_EVERY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ValidationPage:
    """One validation of this run, and its page under the Data Docs site."""

    suite: str
    run_name: str
    page: str  # relative to the lake root
    success: bool
    failed: tuple[str, ...]  # names of the expectations that failed (warnings included)
    outcome: str = "passed"  # failed (a critical expectation), warnings, or passed


class SuiteError(Exception):
    """A suite file is missing or invalid: a deployment problem, not a data problem."""


@dataclass
class SuiteResult:
    """What one suite said about one batch."""

    suite: str
    row_failures: dict[str, tuple[str, list[int]]] = field(
        default_factory=dict
    )  # name -> (severity, rows)
    batch_failures: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (name, severity, detail)
    docs_index: str | None = None

    @property
    def critical(self) -> list[str]:
        return [
            f"{name}: {detail}"
            for name, severity, detail in self.batch_failures
            if severity == "critical"
        ]

    @property
    def warnings(self) -> list[str]:
        rows = [
            f"{name}: {len(found)} row(s)"
            for name, (severity, found) in self.row_failures.items()
            if severity != "critical"
        ]
        return rows + [
            f"{name}: {detail}"
            for name, severity, detail in self.batch_failures
            if severity != "critical"
        ]


def load_suite_json(name: str, directory: Path = DEFAULT_SUITES) -> dict[str, Any]:
    path = directory / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"expectation suite {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from None
    for expectation in data.get("expectations", []):
        if not expectation.get("meta", {}).get("name"):
            raise SuiteError(
                f"{path}: every expectation needs meta.name ({expectation.get('type')})"
            )
    return data


#: expectation arguments that name the columns an expectation reads
_COLUMN_ARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_ARGS = ("column_list",)
#: expectations that read only the table's column names, not their values
_NAMES_ONLY = {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"}


def checked_columns(suite: dict[str, Any]) -> set[str] | None:
    """The columns whose values the suite reads; None when that cannot be told (then every
    column is validated as it is)."""
    columns: set[str] = {ROW}
    for expectation in suite.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        kind = expectation.get("type", "")
        if kind in _NAMES_ONLY:
            continue
        named = [kwargs[a] for a in _COLUMN_ARGS if a in kwargs]
        named += [c for a in _COLUMN_LIST_ARGS for c in kwargs.get(a, [])]
        if not named:
            if kind.startswith("expect_table_row_count"):
                continue
            return None  # an expectation over the whole table: keep every column's values
        columns.update(named)
    return columns


def _row_numbers(indexed: list[Any]) -> set[int]:
    """Row numbers from ``unexpected_index_list``: GX gives one dict per row, or (with
    ``exclude_unexpected_values``) dicts holding lists of row numbers."""
    rows: set[int] = set()
    for entry in indexed:
        value: Any = entry.get("_row") if isinstance(entry, dict) else entry
        if isinstance(value, list):
            rows.update(int(v) for v in value)
        elif value is not None:
            rows.add(int(value))
    return rows


def _store_without_row_lists(store: Any) -> None:
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


#: modules GX imports for expectations and data sources omnisync's suites never use (KL
#: divergence and its charts, JSON schemas, S3 batches): a good part of every run's start
#: (docs/performance.md), and boto3's clients. They load on first use instead.
_DEFERRED = ("scipy.stats", "altair", "jsonschema", "boto3")


def _defer_unused_imports() -> None:
    """Put load-on-first-use modules in ``sys.modules`` for :data:`_DEFERRED` (stdlib
    ``LazyLoader``). Python 3.11's import statement reads ``__spec__`` of a module it finds in
    ``sys.modules``, which would load it at once: that one attribute is answered without loading,
    and a submodule is also set on its package so that ``from package import name`` finds it."""
    import importlib.util
    import sys
    import types

    class Deferred(importlib.util._LazyModule):  # type: ignore[name-defined,misc]
        def __getattribute__(self, attr: str) -> Any:
            if attr == "__spec__":
                return types.ModuleType.__getattribute__(self, "__dict__")["__spec__"]
            return super().__getattribute__(attr)

    for name in _DEFERRED:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        module.__class__ = Deferred
        package, _, child = name.rpartition(".")
        if package:
            setattr(sys.modules[package], child, module)


class Validator:
    """Validates frames against named suites; pays GX's start-up once (create one per run).

    ``docs_root`` is the lake root: Data Docs go to ``<lake>/_reports/data_docs/``. A remote lake
    gets them built locally first, then copied with fsspec.
    """

    def __init__(
        self,
        docs_root: str | None = None,
        suites_dir: Path = DEFAULT_SUITES,
        retention_days: int = 30,
    ) -> None:
        with _GX_LOCK:  # sys.modules is shared: one thread puts the deferred modules there
            _defer_unused_imports()
        import great_expectations as gx  # a slow import: only runs that validate pay it
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from omnisync.validation.offline_docs import site_config

        self._gx = gx
        # GX announces every temporary docs directory at INFO; runs only need its warnings.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self._suites_dir = suites_dir
        self._retention = dt.timedelta(days=retention_days)
        self._lock = _GX_LOCK
        with self._lock:  # building a context parses expressions too
            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self._source = self._context.data_sources.add_pandas("omnisync")
            self._checkpoints: dict[str, Any] = {}
            self._checked_columns: dict[str, set[str] | None] = {}
            #: result keys of this process's validations: only their pages are (re)rendered
            self._validated: list[Any] = []
            self._failed = False  # any expectation of this process's validations failed
            self._reports_local: Path | None = None
            self._reports_remote: str | None = None
            self._pushed: dict[str, int] = {}  # remote lake: what the lake holds, by size
            if docs_root is not None:
                if "://" in docs_root and not docs_root.startswith("file://"):
                    self._reports_local = Path(tempfile.mkdtemp(prefix="omnisync-docs-"))
                    self._reports_remote = f"{docs_root.rstrip('/')}/{REPORTS}"
                    self._pull_reports()
                else:
                    self._reports_local = Path(docs_root.removeprefix("file://")) / REPORTS
                self._reports_local.mkdir(parents=True, exist_ok=True)
                # Results are kept on disk, next to the site, so every run's pages stay listed
                # (an in-memory store made each build drop the pages of earlier runs).
                self._context.add_store(
                    _RESULTS_STORE,
                    {
                        "class_name": "ValidationResultsStore",
                        "store_backend": {
                            "class_name": "TupleFilesystemStoreBackend",
                            "base_directory": str((self._reports_local / _RESULTS).resolve()),
                        },
                    },
                )
                self._context.validation_results_store_name = _RESULTS_STORE
                self._context.add_data_docs_site(
                    _SITE, site_config(str((self._reports_local / _DOCS).resolve()))
                )
            _store_without_row_lists(self._context.validation_results_store)
        # GX fingerprints each batch (an md5 of the whole frame, CPU spent on every row) only to
        # show it among the batch's markers, and itself leaves it out above this many bytes.
        from great_expectations.execution_engine import pandas_execution_engine

        pandas_execution_engine.HASH_THRESHOLD = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> Validator:
        """The run's validator: Data Docs in the lake, kept for the configured retention."""
        return cls(settings.lake, retention_days=settings.data_docs_retention_days)

    def _checkpoint(self, suite_name: str) -> Any:
        if suite_name in self._checkpoints:
            return self._checkpoints[suite_name]
        gx = self._gx
        suite_json = load_suite_json(suite_name, self._suites_dir)
        try:
            suite = self._context.suites.add(gx.ExpectationSuite(**suite_json))
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"expectation suite {suite_name}: {exc}") from None
        batch = self._source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe(
            suite_name
        )
        definition = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
        )
        # No per-run docs action: rebuilding the site after every batch would cost time in
        # proportion to the rows; publish_docs() builds it once at the end of a run.
        checkpoint = self._context.checkpoints.add(
            gx.Checkpoint(
                name=suite_name,
                validation_definitions=[definition],
                actions=[],
                # Row numbers are the frame's own index (0..n-1, equal to ``_row``): naming an
                # index column instead makes GX look each failing row up by name, slowly.
                result_format={"result_format": "COMPLETE", "exclude_unexpected_values": True},
            )
        )
        self._checkpoints[suite_name] = checkpoint
        self._checked_columns[suite_name] = checked_columns(suite_json)
        return checkpoint

    def columns_read(self, suite_name: str) -> set[str] | None:
        """The columns whose values ``suite_name`` reads (None: every column's), for
        ``transforms.quality.validation_frame``: the frame need not convert any other."""
        with self._lock:
            self._checkpoint(suite_name)
            return self._checked_columns[suite_name]

    def validate(
        self,
        suite_name: str,
        frame: pd.DataFrame,
        run_name: str,
        parameters: dict[str, Any] | None = None,
    ) -> SuiteResult:
        """Validate ``frame`` (which must have a ``_row`` column) against ``suite_name``."""
        from great_expectations.core.run_identifier import RunIdentifier

        params = {"today": pd.Timestamp(dt.datetime.now(dt.UTC).date()), **(parameters or {})}
        with self._lock:  # one GX context is not meant for concurrent checkpoint runs
            checkpoint = self._checkpoint(suite_name)
            frame = only_checked(frame, self._checked_columns[suite_name])
            outcome = checkpoint.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=params,
                run_id=RunIdentifier(run_name=run_name),
            )
            # Under the lock: window threads validate side by side, and a failure noted by one
            # must not be overwritten by another's success.
            self._validated.extend(outcome.run_results)
            self._failed = self._failed or not outcome.success
            # GX keeps the last frame it loaded until the next one replaces it: a window's
            # validation frame would outlive the window.
            self._source.get_execution_engine().batch_manager.batch_data_cache.clear()
        result = SuiteResult(suite_name, docs_index=self.docs_index)
        for suite_result in outcome.run_results.values():
            for item in suite_result.results:
                self._collect(item, result)
        return result

    @staticmethod
    def _collect(item: Any, result: SuiteResult) -> None:
        config = item.expectation_config
        name = config.meta.get("name", config.type)
        severity = str(getattr(config.severity, "value", config.severity)).lower()
        # Imported here as the module's other uses of pages are: GX loads first.
        from omnisync.validation.pages import raised_exception

        detail = raised_exception(item.exception_info)
        if detail is not None:  # could not run: critical whatever its severity (pages.py)
            result.batch_failures.append((name, "critical", f"could not run: {detail}"))
            return
        if item.success:
            return
        indexed = item.result.get("unexpected_index_list")
        if config.meta.get("scope") == "row" and indexed is not None:
            rows = sorted(_row_numbers(indexed))
            result.row_failures[name] = (severity, rows)
            return
        mismatched = (item.result.get("details") or {}).get("mismatched")
        if mismatched:
            missing = mismatched.get("missing") if isinstance(mismatched, dict) else None
            if missing:
                result.batch_failures.append((name, severity, f"missing column(s): {missing}"))
                return
        observed = item.result.get("observed_value")
        count = item.result.get("unexpected_count")
        detail = (
            f"observed {observed!r}"
            if observed is not None
            else f"{count} unexpected value(s)"
            if count is not None
            else "failed"
        )
        result.batch_failures.append((name, severity, detail))

    @property
    def docs_index(self) -> str | None:
        if self._reports_remote:  # shown to people: no user:pass@ of the lake's URL
            return without_userinfo(f"{self._reports_remote}/{_DOCS}/index.html")
        return str(self._reports_local / _DOCS / "index.html") if self._reports_local else None

    def publish_docs(self) -> str | None:
        """Render this run's validation pages, and rebuild the site's index when it is due;
        returns the index path.

        The index lists every validation within the retention, so building it costs time in
        proportion to the history (docs/performance.md). It is rebuilt when this
        run has a failing expectation, when it is older than :data:`INDEX_EVERY`, or when it is
        missing; a run that only passed renders its own pages (linked from its summary) and
        appears in the index at the next rebuild."""
        from omnisync.validation.offline_docs import install_assets

        if self._reports_local is None:
            return None
        site = self._reports_local / _DOCS
        index = site / "index.html"
        due = (
            self._failed
            or not index.exists()
            or dt.datetime.now().timestamp() - index.stat().st_mtime > INDEX_EVERY.total_seconds()
        )
        resources = list(self._validated)
        with self._lock:
            if due:
                self._forget_old_results()
                resources += self._add_every_suite()
            # Earlier runs' pages are on disk already: they are not rendered again. The index
            # reads every listed result for its status, and only the summary is needed, not
            # the whole result through marshmallow, which costs seconds at 30 days of runs.
            self._context.get_validation_result = self._result_summary  # type: ignore[method-assign]
            try:
                self._context.build_data_docs(
                    site_names=[_SITE],
                    resource_identifiers=resources,
                    build_index=due,
                )
            finally:
                del self._context.get_validation_result
        install_assets(site)
        self._push_changed()
        return self.docs_index

    def pages(self, run_id: str) -> list[ValidationPage]:
        """The validations of one run (every process's: the results are on disk), oldest first.
        Run names are ``<run id>`` or ``<run id>-<part>``."""
        if self._reports_local is None:
            return []
        from omnisync.validation.pages import as_stored, outcome

        store: Any = self._context.validation_results_store
        found = []
        with self._lock:
            for key in store.list_keys():
                name = key.run_id.run_name or ""
                if name != run_id and not name.startswith(f"{run_id}-"):
                    continue
                result = store.get(key)
                shown = outcome(as_stored(item) for item in result.results)
                found.append(
                    ValidationPage(
                        key.expectation_suite_identifier.name,
                        name,
                        # where GX's site builder puts the page of this result
                        f"{DATA_DOCS}/validations/" + "/".join(key.to_tuple()) + ".html",
                        bool(result.success),
                        tuple(
                            item.expectation_config.meta.get("name", item.expectation_config.type)
                            for item in result.results
                            if not item.success
                        ),
                        shown,
                    )
                )
        return sorted(found, key=lambda page: page.page.split("/")[-2])  # by run time

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

    def _forget_old_results(self) -> None:
        """Results older than the retention go; GX then drops their pages from the site."""
        store: Any = self._context.validation_results_store
        cutoff = dt.datetime.now(dt.UTC) - self._retention
        for key in store.list_keys():
            run_time = key.run_id.run_time
            if run_time.tzinfo is None:
                run_time = run_time.replace(tzinfo=dt.UTC)
            if run_time < cutoff:
                store.remove_key(key)
                if self._reports_remote:
                    import fsspec

                    relative = "/".join(key.to_tuple()) + ".json"
                    fs, path = fsspec.core.url_to_fs(f"{self._reports_remote}/{_RESULTS}")
                    fs.rm(f"{path}/{relative}", recursive=False)

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
        for part in (_DOCS, _RESULTS):
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

    def close(self) -> None:
        if self._reports_remote and self._reports_local:
            # A process that validated but did not publish (a Dask worker) hands its results
            # to the lake, where the run's publishing process finds them.
            self._push_changed()
            shutil.rmtree(self._reports_local, ignore_errors=True)
