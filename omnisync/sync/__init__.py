"""The customer sync: windows planned from counts, extracted without loss, written in order."""

from omnisync.sync.job import STREAM, BatchRejected, Plan, SyncJob, WindowResult, preflight

__all__ = ["STREAM", "BatchRejected", "Plan", "SyncJob", "WindowResult", "preflight"]
