"""A run's validations in its Prefect artifact: failed, passed with warnings, passed, apart."""

from __future__ import annotations

from pathlib import Path

from omnisync.settings import load_settings
from omnisync.validation.runner import ValidationPage
from omnisync.validation.summary import validation_markdown


def test_the_artifact_tells_warnings_from_failures(tmp_path: Path) -> None:
    settings = load_settings(lake=str(tmp_path / "lake"))
    pages = [
        ValidationPage("customers", f"run-{n}", f"p/{n}.html", outcome == "passed", (), outcome)
        for n, outcome in enumerate(("passed", "warnings", "failed"))
    ]
    text = validation_markdown(settings, pages)
    assert "3 batch(es), 1 failed, 1 passed with warnings" in text
    rows = [line for line in text.splitlines() if line.startswith("| `run-")]
    assert [row.split(" | ")[2] for row in rows] == ["failed", "passed with warnings", "passed"]
