"""The customers suite: each expectation fires on a crafted bad record and stays quiet otherwise."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from omnisync.validation import Validator, validate_customers
from omnisync.validation.suites import DEFAULT_SUITES, SuiteError, checked_columns, load_suite_json
from sandbox.seed import seed_customers
from transforms.customers import Lineage, to_table

LINEAGE = Lineage("run-v", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "https://omnitron.test")


def clean_records(count: int = 30) -> list[dict[str, Any]]:
    """Seed customers with every business-rule problem of the seed removed."""
    records = []
    for customer in seed_customers(count, seed=21):
        record = dict(customer.data)
        record.update(
            email=f"user{record['pk']}@example.com",
            gender="female",
            user_type="guest",
            date_of_birth="1990-05-05",
            phone_number="05321234567",
        )
        records.append(record)
    return records


def typed(records: list[dict[str, Any]]) -> pa.Table:
    return to_table(records, LINEAGE).table


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake")


@pytest.fixture(scope="module")
def validator(lake: Path) -> Iterator[Validator]:
    validator = Validator(str(lake))
    yield validator
    validator.close()


def test_clean_records_pass_without_flags(validator: Validator) -> None:
    outcome = validate_customers(validator, typed(clean_records()), "clean")
    assert outcome.passed and outcome.warnings == [] and outcome.flagged_rows == 0
    assert outcome.good.num_rows == 30 and outcome.quarantined.num_rows == 0


@pytest.mark.parametrize(
    ("field", "value", "expectation"),
    [
        ("email", "ayse.yilmaz@", "email_is_valid"),
        ("email", "no at sign", "email_is_valid"),
        ("date_of_birth", "2099-01-01", "birth_date_not_in_future"),
        ("created_date", "2099-01-01T00:00:00Z", "created_not_after_modified"),
        ("gender", "unknown", "gender_is_known"),
        ("user_type", "vip", "user_type_is_known"),
        ("phone_number", "12", "phone_is_parseable"),
    ],
)
def test_a_business_rule_breach_flags_the_row_and_keeps_it(
    validator: Validator, field: str, value: str, expectation: str
) -> None:
    records = clean_records()
    records[7][field] = value
    outcome = validate_customers(validator, typed(records), f"breach-{expectation}")
    assert outcome.passed
    assert outcome.good.num_rows == 30, "a flagged customer stays in customers/ (G6)"
    flags = dict(
        zip(
            outcome.good.column("pk").to_pylist(),
            outcome.good.column("_dq_flags").to_pylist(),
            strict=True,
        )
    )
    assert flags[records[7]["pk"]] == [expectation]
    assert all(f == [] for pk, f in flags.items() if pk != records[7]["pk"])
    assert outcome.good.column(field).to_pylist()[7] is not None, "source values are kept"
    assert any(w.startswith(expectation) for w in outcome.warnings)


def test_a_missing_column_fails_the_batch(validator: Validator) -> None:
    outcome = validate_customers(
        validator, typed(clean_records()).drop_columns(["erp_code"]), "missing"
    )
    assert not outcome.passed
    assert any("documented_columns_present" in f and "erp_code" in f for f in outcome.failures)


def test_a_wrong_type_fails_the_batch(validator: Validator) -> None:
    table = typed(clean_records())
    table = table.set_column(1, "channel", table.column("channel").cast(pa.string()))
    outcome = validate_customers(validator, table, "types")
    assert any(f.startswith("channel_is_integer") for f in outcome.failures)


def test_a_duplicate_channel_code_fails_the_batch(validator: Validator) -> None:
    records = clean_records()
    records[3].update(channel=records[4]["channel"], channel_code=records[4]["channel_code"])
    outcome = validate_customers(validator, typed(records), "duplicates")
    assert any(f.startswith("channel_code_unique_per_channel") for f in outcome.failures)


def strict_email_validator(tmp_path: Path) -> Validator:
    """A validator whose email expectation is critical: a bad email quarantines its row."""
    suites = tmp_path / "suites"
    shutil.copytree(DEFAULT_SUITES, suites)
    suite = json.loads((suites / "customers.json").read_text())
    for expectation in suite["expectations"]:
        if expectation["meta"]["name"] == "email_is_valid":
            expectation["severity"] = "critical"
    (suites / "customers.json").write_text(json.dumps(suite))
    return Validator(None, suites_dir=suites)


def test_a_small_batch_with_a_bad_record_is_not_judged_by_its_share(tmp_path: Path) -> None:
    """One bad record among a dozen is 8% of the batch: the share is judged over a whole run
    (omnisync/sync/finish.py), never over one small batch."""
    records = clean_records(12)
    records[0]["email"] = "broken@"
    outcome = validate_customers(strict_email_validator(tmp_path), typed(records), "share")
    assert outcome.passed and outcome.quarantined.num_rows == 1 and outcome.good.num_rows == 11


def test_critical_row_expectations_quarantine_rows_with_their_reasons(tmp_path: Path) -> None:
    strict = strict_email_validator(tmp_path)
    records = clean_records()
    records[2]["email"] = "broken@"
    outcome = validate_customers(strict, typed(records), "strict")
    assert outcome.good.num_rows == 29
    quarantined = outcome.quarantined.to_pylist()
    assert [(q["pk"], q["reasons"]) for q in quarantined] == [
        (records[2]["pk"], ["email_is_valid"])
    ]
    assert "broken@" in quarantined[0]["raw"]


def test_a_suite_without_names_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "customers.json").write_text(
        json.dumps(
            {
                "name": "customers",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "pk"}}
                ],
            }
        )
    )
    with pytest.raises(SuiteError, match=r"meta\.name"):
        validate_customers(Validator(None, suites_dir=tmp_path), typed(clean_records(3)), "x")


def test_data_docs_list_the_latest_run(validator: Validator, lake: Path) -> None:
    validate_customers(validator, typed(clean_records()), "the-latest-run")
    assert validator.publish_docs() == str(lake.resolve() / "_reports" / "data_docs" / "index.html")
    index = lake / "_reports" / "data_docs" / "index.html"
    assert index.exists()
    assert "the-latest-run" in index.read_text()


def test_a_validation_page_says_what_a_warning_only_failure_means(
    validator: Validator, lake: Path
) -> None:
    """A batch with only warning-level failures shows "Failed" in GX's header; each
    expectation's note says that its rows were kept and flagged, not lost."""
    records = clean_records()
    records[0]["email"] = "not-an-email"
    outcome = validate_customers(validator, typed(records), "warnings-only")
    assert outcome.passed and outcome.flagged_rows == 1
    validator.publish_docs()
    pages = list((lake / "_reports" / "data_docs" / "validations").rglob("*.html"))
    assert pages, "a page for the validation"
    text = " ".join(page.read_text() for page in pages)
    assert "Warning only: the rows that fail are kept in customers/" in text
    assert "_dq_flags" in text


def test_validators_in_parallel_threads_never_call_gx_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GX's suite-parameter parser is process-global, built lazily and not thread-safe: two
    window threads that each built a context once broke it for the whole process (``push_first()
    missing 1 required positional argument``). However many validators exist, no two threads are
    ever inside GX's parser at once."""
    import threading
    import time

    from great_expectations.core import suite_parameters

    active, most = 0, 0
    guard = threading.Lock()
    original = suite_parameters.EXPR.get_parser

    def watched() -> Any:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        time.sleep(0.005)  # widen the window in which a second thread could enter
        try:
            return original()
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(suite_parameters.EXPR, "get_parser", watched)
    table = typed(clean_records())
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            validator = Validator(None)
            barrier.wait()
            for i in range(3):
                assert validate_customers(validator, table, f"thread-{n}-{i}").passed
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert most == 1, f"{most} threads were inside GX's parser at once"


def test_validating_only_the_checked_columns_changes_no_answer(
    validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GX gets the unchecked columns as placeholders (it only reads their names): every row
    failure and batch failure is the same as with the whole frame."""
    from omnisync.validation import runner
    from transforms.quality import validation_frame

    records = [dict(c.data) for c in seed_customers(400, seed=5)]  # the seed's own problems
    records[3]["channel_code"] = records[4]["channel_code"]
    records[3]["channel"] = records[4]["channel"]
    records[5]["channel_code"] = None
    table = typed(records)
    frame = validation_frame(table)
    slim = validator.validate("customers", frame, "slim")
    # built slim (what a sync does): the unchecked columns are never converted at all
    checked = validator.columns_read("customers")
    built_slim = validation_frame(table, checked)
    assert list(built_slim.columns) == list(frame.columns)
    for name in frame.columns:
        if checked is not None and name in checked:
            pd.testing.assert_series_equal(built_slim[name], frame[name])
        else:
            assert built_slim[name].dtype == bool and not built_slim[name].any(), name
    assert frame["_channel_key"][5] is None and frame["_channel_key"][3] == (
        f"{records[3]['channel']}|{records[3]['channel_code']}"
    )
    assert runner.only_checked(built_slim, checked) is built_slim, "a slim frame is not copied"
    from_slim = validator.validate("customers", built_slim, "built-slim")
    monkeypatch.setattr(runner, "only_checked", lambda frame, checked: frame)
    whole = validator.validate("customers", frame, "whole")
    assert slim.row_failures == whole.row_failures == from_slim.row_failures
    assert slim.row_failures
    assert slim.batch_failures == whole.batch_failures == from_slim.batch_failures
    assert any(name == "channel_code_unique_per_channel" for name, _, _ in whole.batch_failures)
    assert checked_columns(load_suite_json("customers")) == {
        "_row",
        "pk",
        "channel",
        "_channel_key",
        "email",
        "date_of_birth",
        "modified_date",
        "created_date",
        "gender",
        "user_type",
        "_phone_valid",
    }


def test_a_run_does_not_load_what_gx_imports_for_expectations_it_never_uses() -> None:
    """scipy.stats, altair, jsonschema and boto3 (expectations and data sources omnisync never
    uses) cost about 1 s of every run's start: they stay unloaded through a validation, and
    still load when something uses them."""
    from tests.fresh_interpreter import printed_by

    script = (
        "import sys\n"
        "from omnisync.validation import Validator, validate_customers\n"
        "from tests.validation.test_customers_suite import clean_records, typed\n"
        "outcome = validate_customers(Validator(None), typed(clean_records(20)), 'r')\n"
        "assert outcome.passed\n"
        "print(*(type(sys.modules[m]).__name__ for m in ('scipy.stats', 'altair', 'jsonschema',"
        " 'boto3')))\n"
        "import scipy.stats, jsonschema\n"
        "print(scipy.stats.norm.cdf(0), jsonschema.validate(1, {'type': 'integer'}))\n"
    )
    assert printed_by(script) == ["Deferred"] * 4 + ["0.5", "None"]


def test_birth_dates_at_any_year_get_the_right_verdict_through_gx_vectorised_path(
    validator: Validator,
) -> None:
    """GX compares datetimes column-wide only for nanosecond columns (other units went through
    a Python call per row: 5% of a sync's CPU). Dates beyond what nanoseconds hold (years 1678 to
    2261) still get their verdict: a birth date in year 9999 is in the future, year 1 is not."""
    from transforms.quality import validation_frame

    records = clean_records()
    future, ancient, missing, tomorrow = records[3], records[4], records[5], records[6]
    future["date_of_birth"] = "9999-12-31"
    ancient["date_of_birth"] = "0001-01-01"
    missing["date_of_birth"] = None
    tomorrow["date_of_birth"] = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    table = typed(records)
    assert str(validation_frame(table)["date_of_birth"].dtype) == "datetime64[ns]"
    outcome = validate_customers(validator, table, "birth-dates")
    flagged = {
        pk
        for pk, flags in zip(
            outcome.good.column("pk").to_pylist(),
            outcome.good.column("_dq_flags").to_pylist(),
            strict=True,
        )
        if "birth_date_not_in_future" in flags
    }
    assert flagged == {future["pk"], tomorrow["pk"]}
    assert outcome.good.column("date_of_birth").to_pylist()[3] == dt.date(9999, 12, 31)


def test_a_warning_level_expectation_that_cannot_run_fails_the_batch_and_its_page(
    tmp_path: Path,
) -> None:
    """An expectation on a column that is not there raises inside GX (1.24 nests the error by
    metric in ``exception_info``): a check that did not happen fails the batch as critical,
    whatever its severity, and its page says "failed", not "passed with warnings"."""
    suites = tmp_path / "suites"
    shutil.copytree(DEFAULT_SUITES, suites)
    suite = json.loads((suites / "customers.json").read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "loyalty_tier"},
            "meta": {"name": "loyalty_tier_present", "scope": "row"},
            "severity": "warning",
        }
    )
    (suites / "customers.json").write_text(json.dumps(suite))
    validator = Validator(str(tmp_path / "lake"), suites_dir=suites)
    try:
        outcome = validate_customers(validator, typed(clean_records()), "cannot-run")
        assert not outcome.passed
        assert any(f.startswith("loyalty_tier_present: could not run") for f in outcome.failures)
        (page,) = validator.pages("cannot-run")
        assert page.outcome == "failed"
    finally:
        validator.close()
