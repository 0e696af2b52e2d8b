"""ERP reconciliation: read the ERP's codes, plan against the synced customers, write back (G7)."""

from omnisync.erp.reconcile import (
    ErpSource,
    PlanRejected,
    PlanTooLarge,
    ReconcileResult,
    WriteBackFailed,
    reconcile,
)
from omnisync.erp.source import ErpInputError

__all__ = [
    "ErpInputError",
    "ErpSource",
    "PlanRejected",
    "PlanTooLarge",
    "ReconcileResult",
    "WriteBackFailed",
    "reconcile",
]
