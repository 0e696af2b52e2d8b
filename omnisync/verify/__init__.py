"""``omnisync verify``: the lake proves itself against Omnitron (G9), one module per concern.

counts      the two sides: what a reader of ``customers/`` sees, and Omnitron's counts and lists
narrowing   the pk and modified_date ranges whose counts differ, narrowed to customers
report      the kinds of difference, the verdict line and the JSON report
run         one verification, judged as of the watermark, recorded in the run log
"""

from omnisync.verify.report import KINDS, Outcome
from omnisync.verify.run import NothingToVerify, run_verify, verify

__all__ = ["KINDS", "NothingToVerify", "Outcome", "run_verify", "verify"]
