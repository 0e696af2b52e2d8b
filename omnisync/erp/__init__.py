"""ERP reconciliation: read the ERP's codes, plan against the synced customers, write back (G7)."""

from omnisync.erp.reconcile import reconcile
from omnisync.erp.refusal import PlanRejected, PlanTooLarge
from omnisync.erp.result import ReconcileResult, WriteBackFailed
from omnisync.erp.source import ErpInputError, ErpSource

__all__ = [
    "ErpInputError",
    "ErpSource",
    "PlanRejected",
    "PlanTooLarge",
    "ReconcileResult",
    "WriteBackFailed",
    "reconcile",
]
