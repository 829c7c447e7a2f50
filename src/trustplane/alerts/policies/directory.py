"""Directory policies: mass deletion of users or groups by one actor within a window."""

from __future__ import annotations

from typing import Any

from trustplane.alerts.activities import ActivityDraft
from trustplane.alerts.policies.base import (
    HIGH,
    IMPACT,
    PRIVILEGED_ACCOUNT_MONITORING,
    AlertPolicy,
    EventView,
    Finding,
    PolicyContext,
)

DELETIONS = ["directory.user.deleted", "directory.group.deleted"]


class MassDeletion(AlertPolicy):
    key = "massDeletion"
    name = "Mass deletion of users or groups"
    description = "One actor deleted at least the threshold number of users and groups within the window."
    event_types = tuple(DELETIONS)
    defaults = {"deletions": 20, "windowMinutes": 10}

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        actor_id = str(event.actor.get("id") or "")
        if not actor_id:
            return []
        since = event.created_ms - int(thresholds["windowMinutes"] * 60_000)
        count = await ctx.count_recent(DELETIONS, actor_id[:36], since)
        if count < thresholds["deletions"]:
            return []
        who = event.actor.get("name") or actor_id
        return [
            Finding(
                subject=f"actor:{actor_id}",
                title="Mass deletion",
                description=f"{who} deleted {count} users and groups within "
                f"{thresholds['windowMinutes']} minutes.",
                severity=HIGH,
                stories=[PRIVILEGED_ACCOUNT_MONITORING],
                intent=[IMPACT],
                entities=[{"entityRole": "Source", "id": actor_id, "label": who, "type": "account"}],
                evidence=[f"{count} deletions"],
                entity_user=str(who)[:320],
                threat_score=70,
            )
        ]
