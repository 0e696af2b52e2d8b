"""Validation with Great Expectations: suites from ``expectations/*.json``, run on an ephemeral
context created once per run, with Data Docs built under the lake's ``_reports/data_docs/``."""

from omnisync.validation.customers import CustomerValidation, validate_customers
from omnisync.validation.runner import Validator
from omnisync.validation.suites import SuiteResult

__all__ = ["CustomerValidation", "SuiteResult", "Validator", "validate_customers"]
