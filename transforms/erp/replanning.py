"""Whether a planned change still applies to a customer read again just before its PATCH."""

from __future__ import annotations

from typing import Any

from transforms.erp.keys import key_of


def replan_one(fresh: dict[str, Any], change: dict[str, Any]) -> tuple[str | None, str]:
    """For a customer that changed since the plan: the code to send (or None) and why.

    The change still applies only if the customer still matches the ERP row by the same key and
    nobody set its erp_code in Omnitron meanwhile.
    """
    current = fresh.get("erp_code")
    target = str(change["erp_code"])
    if change["action"] == "clear":
        if current in (None, ""):
            return None, "already clear"
        if current != change["previous_erp_code"]:
            return None, f"erp_code changed in Omnitron since the plan ({current!r}); not cleared"
        return "", "still to clear"
    if current == target:
        return None, "erp_code already current"
    if current != change["previous_erp_code"]:
        return None, (
            f"erp_code changed in Omnitron since the plan "
            f"({change['previous_erp_code']!r} -> {current!r}); not overwritten"
        )
    if (
        change.get("match_value") is not None
        and key_of(fresh, change["match_key"]) != change["match_value"]
    ):
        return (
            None,
            f"the customer's {change['match_key']} changed since the plan; no longer matches",
        )
    return target, "still to set"
