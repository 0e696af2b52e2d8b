"""What the Data Docs show people: an outcome by severity, the asset by its name, no internals.

GX marks a validation failed when any expectation failed, whatever its severity, so every sync
with a flagged customer showed a red cross. Here a validation's outcome is:

- ``failed`` when a critical expectation failed (or could not run): the batch or its rows were
  refused, as the page says;
- ``warnings`` when only warning-level expectations failed: the rows were kept and flagged;
- ``passed`` otherwise.

The index and each page show the three apart. Pages name the validated asset (GX showed
"Data asset: None" for in-memory batches) and show the columns that exist in the lake rather
than the ones derived for validation: ``_row`` (row numbers), ``_channel_key`` (channel and
channel_code together), ``_phone_valid`` (whether phone_number parses) and ``_in_conflict`` (an
ERP row in conflict once matched).

Only rendering is changed: stored validation results stay as GX wrote them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from great_expectations.render.renderer.page_renderer import ValidationResultsPageRenderer
from great_expectations.render.renderer.site_index_page_renderer import SiteIndexPageRenderer

FAILED, WARNINGS, PASSED = "failed", "warnings", "passed"
#: columns derived for validation only, shown as the lake's columns they stand for
SHOWN_AS = {
    "_channel_key": "channel_code (per channel)",
    "_phone_valid": "phone_number",
    "_in_conflict": "match (conflicts)",
}
HIDDEN = frozenset({"_row", *SHOWN_AS})
#: the asset each suite validates, as people call it
ASSETS = {
    "customers": "customers (a window of extracted customers)",
    "erp_codes": "ERP input (its rows, columns mapped)",
    "erp_patch_plan": "ERP write-back plan",
}
_ICONS = {
    FAILED: ("Failed", "fas fa-times text-danger"),
    WARNINGS: ("Passed with warnings", "fas fa-exclamation-triangle text-warning"),
    PASSED: ("Succeeded", "fas fa-check-circle text-success"),
}


def raised_exception(info: Any) -> str | None:
    """The message of an expectation that could not run, or None when it ran.

    GX reports it at the top level of ``exception_info`` (``{"raised_exception": True, ...}``)
    or, since 1.x, nested by metric (``{"MetricConfigurationID(...)": {"raised_exception":
    True, ...}}``): both are read. An expectation that could not run counts as a critical
    failure whatever its severity: a check that silently did not happen must not let a run on
    as if it had passed with a warning."""
    if not isinstance(info, Mapping):
        return None
    for entry in (info, *(v for v in info.values() if isinstance(v, Mapping))):
        if entry.get("raised_exception"):
            return str(entry.get("exception_message") or "raised an exception")
    return None


def outcome(results: Iterable[Mapping[str, Any]]) -> str:
    """The outcome of one validation from its expectation results (as stored: dicts with
    ``success``, ``exception_info`` and ``expectation_config.severity``)."""
    found = PASSED
    for result in results:
        if result.get("success"):
            continue
        raised = raised_exception(result.get("exception_info"))
        severity = str((result.get("expectation_config") or {}).get("severity") or "critical")
        if raised or severity.lower().rsplit(".", 1)[-1] == "critical":
            return FAILED
        found = WARNINGS
    return found


def as_stored(result: Any) -> dict[str, Any]:
    """An expectation result (GX's object) as :func:`outcome` reads it."""
    config = result.expectation_config
    severity = getattr(config.severity, "value", config.severity)
    return {
        "success": result.success,
        "exception_info": result.exception_info,
        "expectation_config": {"severity": severity},
    }


class Status(str):
    """A validation's outcome where GX expects its ``success``: truthy unless ``failed``."""

    def __bool__(self) -> bool:
        return self != FAILED


def for_people(validation: Any) -> Any:
    """A copy of ``validation`` (an ExpectationSuiteValidationResult) to render: derived
    columns named as the lake's, and left out of the column lists GX observed."""
    shown = copy.deepcopy(validation)
    for result in shown.results:
        kwargs = result.expectation_config.kwargs
        if kwargs.get("column") in SHOWN_AS:
            kwargs["column"] = SHOWN_AS[kwargs["column"]]
        observed = result.result.get("observed_value") if result.result else None
        if isinstance(observed, list):
            result.result["observed_value"] = [c for c in observed if c not in HIDDEN]
    return shown


class PeopleValidationPage(ValidationResultsPageRenderer):
    """GX's validation page, with :func:`for_people` and the outcome by severity."""

    def render(self, validation_results: Any, suite_parameters: Any = None) -> Any:
        return super().render(for_people(validation_results), suite_parameters)

    @classmethod
    def _render_validation_header(cls, validation_results: Any) -> Any:
        header = super()._render_validation_header(validation_results)  # type: ignore[no-untyped-call]
        params = header.subheader.string_template["params"]
        text, icon = _ICONS[outcome(as_stored(r) for r in validation_results.results)]
        params["success"] = text
        params["html_success_icon"] = f'<i class="{icon}" aria-hidden="true"></i>'
        definition = validation_results.meta.get("active_batch_definition") or {}
        asset = definition.get("data_asset_name") or validation_results.suite_name
        params["data_asset_name"] = ASSETS.get(str(asset), str(asset))
        return header


class PeopleIndexPage(SiteIndexPageRenderer):
    """GX's index, with a third outcome: passed with warnings (a :class:`Status`)."""

    @classmethod
    def _render_validation_success_cell(cls, validation_success: Any) -> Any:
        cell = super()._render_validation_success_cell(  # type: ignore[no-untyped-call]
            bool(validation_success)
        )
        if validation_success == WARNINGS:
            styling = cell.string_template["styling"]["params"]["validation_success"]
            styling["classes"] = ["fas", "fa-exclamation-triangle", "text-warning"]
            styling["attributes"] = {"title": "passed with warnings"}
        return cell

    @classmethod
    def _generate_validation_results_link_table(cls, index_links_dict: Any) -> Any:
        table = super()._generate_validation_results_link_table(  # type: ignore[no-untyped-call]
            index_links_dict
        )
        links = index_links_dict.get("validations_links", [])
        for row, link in zip(table.table_data, links, strict=False):
            if link.get("validation_success") == WARNINGS:
                row["_validation_success_text"] = "Warnings"
        return table
