"""Each expectation's configuration kept for one validation changes no result: every suite's
results are equal, field by field, with and without the memo, on batches that fail every
expectation of the suite and on batches that pass."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from omnisync.validation import Validator, configurations
from omnisync.validation.suites import DEFAULT_SUITES
from tests.validation.test_customers_suite import clean_records, typed
from transforms.quality import validation_frame


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    validator = Validator(None)
    yield validator
    validator.close()


def breached_customers() -> pa.Table:
    """Customers failing every expectation of the customers suite at once."""
    records = clean_records(40)
    records[1]["email"] = "no at sign"
    records[2]["date_of_birth"] = "2099-01-01"
    records[3]["created_date"] = "2099-01-01T00:00:00Z"
    records[4]["gender"] = "unknown"
    records[5]["user_type"] = "vip"
    records[6]["phone_number"] = "12"
    records[7].update(channel=records[8]["channel"], channel_code=records[8]["channel_code"])
    table = typed(records)
    table = table.set_column(1, "channel", table.column("channel").cast(pa.string()))
    return table.drop_columns(["erp_code"])


def pk_broken() -> pa.Table:
    """Customers whose pk is text, one of them missing."""
    table = typed(clean_records(10))
    pks = [str(pk) for pk in table.column("pk").to_pylist()]
    pks[3] = None
    return table.set_column(table.schema.get_field_index("pk"), "pk", pa.array(pks, pa.string()))


FRAMES: dict[str, list[Any]] = {
    "customers": [lambda: typed(clean_records(40)), breached_customers, pk_broken],
    "erp_codes": [
        lambda: pa.table({"erp_code": ["E-1", "E-2"], "_in_conflict": [False, False]}),
        lambda: pa.table({"erp_code": ["", None, "x" * 65], "_in_conflict": [True, False, False]}),
        lambda: pa.table({"customer_id": pa.array([], pa.string())}),
    ],
    "erp_patch_plan": [
        lambda: pa.table(
            {
                "pk": [1, 2],
                "erp_code": ["E-1", "E-2"],
                "action": ["set", "clear"],
                "based_on_modified": [dt.datetime(2026, 1, 1)] * 2,
            }
        ),
        lambda: pa.table(
            {
                "pk": [1, 1, None],
                "erp_code": [None, "E-2", "E-3"],
                "action": ["set", "delete", "correct"],
                "based_on_modified": [None, dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)],
            }
        ),
    ],
}
CASES = [(suite, index) for suite, frames in FRAMES.items() for index in range(len(frames))]


def results(
    validator: Validator,
    suite: str,
    frame: pd.DataFrame,
    memo: bool,
    today: dt.date = dt.date(2026, 12, 7),
) -> list[Any]:
    """Every expectation's result of one checkpoint run, as GX serialises it, by name."""
    checkpoint = validator._checkpoint(suite)
    params = {"today": pd.Timestamp(today)}

    def run() -> Any:
        return checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=params)

    if memo:
        with configurations.held():
            outcome = run()
    else:
        outcome = run()
    (suite_result,) = outcome.run_results.values()
    return sorted(
        (item.to_json_dict() for item in suite_result.results),
        key=lambda item: item["expectation_config"]["meta"]["name"],
    )


@pytest.mark.parametrize(("suite", "index"), CASES)
def test_every_result_is_the_same_with_the_memo(
    validator: Validator, suite: str, index: int
) -> None:
    frame = validation_frame(FRAMES[suite][index]())
    without = results(validator, suite, frame, memo=False)
    held = results(validator, suite, frame, memo=True)
    assert held == without
    assert len(held) == len(
        validator._checkpoint(suite).validation_definitions[0].suite.expectations
    )


def test_the_cases_fail_and_pass_every_expectation(validator: Validator) -> None:
    """The batches above are a real test: each suite's every expectation fails in one of them
    (its results differ from a passing batch's), and passes in another."""
    for suite, frames in FRAMES.items():
        failed: set[str] = set()
        passed: set[str] = set()
        for make in frames:
            for item in results(validator, suite, validation_frame(make()), memo=True):
                name = item["expectation_config"]["meta"]["name"]
                (passed if item["success"] else failed).add(name)
        names = {
            e.meta["name"]
            for e in validator._checkpoint(suite).validation_definitions[0].suite.expectations
        }
        assert failed == names, (suite, names - failed)
        assert passed == names, (suite, names - passed)


def test_nothing_is_kept_from_one_validation_to_the_next(validator: Validator) -> None:
    """A review found the test above blind to a memo kept across validations (every case there
    passes the same ``today``): one kept forever held the suite's ``$today`` of the first run.
    Runs with other parameters, one after another, each equal GX's own."""
    frame = validation_frame(breached_customers())
    for today in (dt.date(2026, 12, 7), dt.date(1990, 1, 1), dt.date(2099, 1, 1)):
        held = results(validator, "customers", frame, memo=True, today=today)
        assert held == results(validator, "customers", frame, memo=False, today=today), today
    births = [
        item["success"]
        for today in (dt.date(1990, 1, 1), dt.date(2099, 1, 1))
        for item in results(validator, "customers", frame, memo=True, today=today)
        if item["expectation_config"]["meta"]["name"] == "birth_date_not_in_future"
    ]
    assert births == [False, True], "the parameter reached the expectation each time"


def test_the_memo_is_only_the_validating_threads(validator: Validator) -> None:
    """Another thread reading a configuration meanwhile gets a new one each time, as from GX."""
    suite = validator._checkpoint("customers").validation_definitions[0].suite
    expectation = suite.expectations[0]
    seen: list[Any] = []
    with configurations.held():
        assert expectation.configuration is expectation.configuration
        for _ in range(2):
            other = threading.Thread(target=lambda: seen.append(expectation.configuration))
            other.start()
            other.join()
    assert seen[0] is not seen[1] and seen[0] == seen[1]
    assert expectation.configuration is not expectation.configuration


def test_suites_are_those_tested() -> None:
    assert {path.stem for path in DEFAULT_SUITES.glob("*.json")} == set(FRAMES)
