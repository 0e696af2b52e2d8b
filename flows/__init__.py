"""Prefect flows: orchestration only. They wire client, transforms, validation, lake and state."""
