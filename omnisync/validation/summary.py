"""A run's validations, as markdown for its Prefect artifact: each batch's outcome and a link
to its own Data Docs page (see ``omnisync.lake.browse`` for when a link can be made)."""

from __future__ import annotations

from omnisync.lake.browse import lake_link
from omnisync.settings import Settings
from omnisync.validation.docs_site import DATA_DOCS
from omnisync.validation.runner import ValidationPage

#: beyond this many batches, the summary counts the rest (a 1M backfill validates ~100 chunks)
MAX_LISTED = 40


def validation_markdown(settings: Settings, pages: list[ValidationPage]) -> str:
    index = lake_link(settings, f"{DATA_DOCS}/index.html", "Data Docs index")
    if not pages:
        return f"No validation in this run. {index}\n"
    failing = [page for page in pages if page.outcome == "failed"]
    warned = [page for page in pages if page.outcome == "warnings"]
    lines = [
        f"## Validations of this run: {len(pages)} batch(es), {len(failing)} failed, "
        f"{len(warned)} passed with warnings\n",
        "A warning-level failure only flags rows (kept in `customers/`, named in `_dq_flags`);",
        "a critical one stops the run or quarantines the rows, as each page says.\n",
        "| batch | suite | outcome | failed expectations | page |",
        "|---|---|---|---|---|",
    ]
    # failed batches first, then those with warnings: they are the ones a reviewer opens
    rest = [page for page in pages if page.outcome not in ("failed", "warnings")]
    listed = [*failing, *warned, *rest][:MAX_LISTED]
    for page in listed:
        failed = ", ".join(f"`{name}`" for name in page.failed) or "none"
        link = lake_link(settings, page.page, "open")
        shown = {"warnings": "passed with warnings"}.get(page.outcome, page.outcome)
        lines.append(f"| `{page.run_name}` | {page.suite} | {shown} | {failed} | {link} |")
    if len(pages) > len(listed):
        lines.append(f"\n{len(pages) - len(listed)} more batch(es) passed; all are in the index.")
    lines.append(f"\n{index}\n")
    return "\n".join(lines)
