"""Running GX suites: one ephemeral context per process run, suites loaded from reviewable JSON.

What a failure means is read from each expectation: ``severity`` (critical, warning, info) and
``meta.scope`` (``row``: the failing rows are named, by their ``_row`` number; ``batch``: the
batch as a whole). Results are matched by the expectation's ``meta.name``, since GX does not keep
the suite's order.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from omnisync.url_credentials import without_userinfo
from omnisync.validation import configurations
from omnisync.validation.docs_site import (
    DATA_DOCS,
    DOCS,
    REPORTS,
    RESULTS,
    DocsSite,
    keys_listed_once,
    store_without_row_lists,
)
from omnisync.validation.gx_import import import_gx, start_import
from omnisync.validation.suites import (
    DEFAULT_SUITES,
    SuiteError,
    SuiteResult,
    checked_columns,
    collect,
    load_suite_json,
)
from transforms.quality import only_checked

if TYPE_CHECKING:
    from omnisync.settings import Settings

log = logging.getLogger("omnisync.validation")
# GX parses suite parameters with a module-level pyparsing grammar, which is not thread-safe:
# two threads validating at once (even on two contexts) broke it for the whole process. Every
# call into GX takes this one process-wide lock.
_GX_LOCK = threading.Lock()
_RESULTS_STORE = "omnisync_validation_results"
_SITE = "omnisync"
#: a run whose validations all passed rebuilds the index only when it is older than this
INDEX_EVERY = dt.timedelta(hours=1)


def _not_saved() -> None:
    """An ephemeral context's configuration, not written anywhere (see ``Validator``)."""


@dataclass(frozen=True)
class ValidationPage:
    """One validation of this run, and its page under the Data Docs site."""

    suite: str
    run_name: str
    page: str  # relative to the lake root
    success: bool
    failed: tuple[str, ...]  # names of the expectations that failed (warnings included)
    outcome: str = "passed"  # failed (a critical expectation), warnings, or passed


class Validator(DocsSite):
    """Validates frames against named suites; pays GX's start-up once (create one per run).

    ``docs_root`` is the lake root: Data Docs go to ``<lake>/_reports/data_docs/``. A remote lake
    gets them built locally first, then copied with fsspec.
    """

    @staticmethod
    def start_import() -> None:
        """Start GX's import on its own thread and return at once (``gx_import.start_import``):
        the validator built later waits only for what is left of it. No other thread may import
        anything GX imports before the validator is built."""
        with _GX_LOCK:
            start_import()

    def __init__(
        self,
        docs_root: str | None = None,
        suites_dir: Path = DEFAULT_SUITES,
        retention_days: int = 30,
    ) -> None:
        with _GX_LOCK:  # what import_gx changes is shared by every thread while it imports
            gx = import_gx()  # a slow import, started earlier (start_import) or now
            configurations.install(gx.expectations.Expectation)
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
            # An ephemeral context keeps its configuration in memory, yet GX writes it out as
            # YAML to an in-memory store after every change (a store, a site, each suite's
            # checkpoint) that nothing reads back: most of the context's set-up time.
            self._context._save_project_config = _not_saved
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
                            "base_directory": str((self._reports_local / RESULTS).resolve()),
                        },
                    },
                )
                self._context.validation_results_store_name = _RESULTS_STORE
                self._context.add_data_docs_site(
                    _SITE, site_config(str((self._reports_local / DOCS).resolve()))
                )
            store_without_row_lists(self._context.validation_results_store)
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
            with configurations.held():
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
                collect(item, result)
        return result

    @property
    def docs_index(self) -> str | None:
        if self._reports_remote:  # shown to people: no user:pass@ of the lake's URL
            return without_userinfo(f"{self._reports_remote}/{DOCS}/index.html")
        return str(self._reports_local / DOCS / "index.html") if self._reports_local else None

    def publish_docs(self) -> str | None:
        """Render this run's validation pages, and rebuild the site's index when it is due;
        returns the index path.

        The index lists every validation within the retention, so building it costs time in
        proportion to the history (docs/performance.md). It is rebuilt when this
        run has a failing expectation, when it is older than :data:`INDEX_EVERY`, or when it is
        missing; a run that only passed renders its own pages (linked from its summary) and
        appears in the index at the next rebuild."""
        from omnisync.validation.vendored_assets import install_assets

        if self._reports_local is None:
            return None
        site = self._reports_local / DOCS
        index = site / "index.html"
        due = (
            self._failed
            or not index.exists()
            or dt.datetime.now().timestamp() - index.stat().st_mtime > INDEX_EVERY.total_seconds()
        )
        resources = list(self._validated)
        with self._lock:
            kept = None
            if due:
                kept = self._forget_old_results()
                resources += self._add_every_suite()
            # Earlier runs' pages are on disk already: they are not rendered again. The index
            # reads every listed result for its status, and only the summary is needed, not
            # the whole result through marshmallow, which costs seconds at 30 days of runs.
            self._context.get_validation_result = self._result_summary
            try:
                with keys_listed_once(self._context.validation_results_store, kept):
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

    def close(self) -> None:
        if self._reports_remote and self._reports_local:
            # A process that validated but did not publish (a Dask worker) hands its results
            # to the lake, where the run's publishing process finds them.
            self._push_changed()
            shutil.rmtree(self._reports_local, ignore_errors=True)
