"""Identity policies on identity protection's stream: a risky user, a risky sign-in, impossible travel
(protection's unlikelyTravel detection), and a compromise confirmed by an admin or a partner."""

from __future__ import annotations

from typing import Any

from trustplane.alerts.activities import SIGN_IN, SIGN_IN_OFFLINE_RISK, ActivityDraft
from trustplane.alerts.policies.base import (
    CREDENTIAL_ACCESS,
    HIGH,
    INITIAL_ACCESS,
    RISK_RANK,
    SEVERITY_OF_RISK,
    THREAT_DETECTION,
    AlertPolicy,
    EventView,
    Finding,
    PolicyContext,
    ip_entity,
    user_entity,
)

LEVELS = ("low", "medium", "high")


class RiskyUser(AlertPolicy):
    key = "riskyUser"
    name = "Risky user"
    description = "A user's risk rose to the minimum level or above."
    event_types = ("protection.user_risk.changed",)
    defaults = {"minimumRiskLevel": "high"}
    choices = {"minimumRiskLevel": LEVELS}

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        level = str(event.data.get("riskLevel", "none"))
        if RISK_RANK.get(level, 0) < RISK_RANK[thresholds["minimumRiskLevel"]]:
            return []
        upn = event.data.get("userPrincipalName") or await ctx.user_principal_name(event.subject_id)
        return [
            Finding(
                subject=f"user:{event.subject_id}",
                title="Risky user",
                description=f"The user {upn or event.subject_id} is at {level} risk "
                f"({event.data.get('riskState')}, {event.data.get('riskDetail')}).",
                severity=SEVERITY_OF_RISK[level],
                stories=[THREAT_DETECTION],
                intent=[CREDENTIAL_ACCESS],
                entities=[user_entity(event.subject_id, upn)],
                evidence=[f"User risk {level}"],
                entity_user=upn or event.subject_id,
                threat_score=RISK_RANK[level] * 30,
            )
        ]


def _sign_in_user(event: EventView) -> tuple[str, str | None]:
    upn = event.data.get("userPrincipalName")
    return str(event.data.get("userId") or upn or ""), upn


class RiskySignIn(AlertPolicy):
    key = "riskySignIn"
    name = "Risky sign-in"
    description = "A sign-in's aggregated risk is at the minimum level or above."
    event_types = (SIGN_IN, SIGN_IN_OFFLINE_RISK)
    defaults = {"minimumRiskLevel": "medium"}
    choices = {"minimumRiskLevel": LEVELS}

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        level = str(event.data.get("riskLevelAggregated", "none"))
        user_id, upn = _sign_in_user(event)
        if not user_id or RISK_RANK.get(level, 0) < RISK_RANK[thresholds["minimumRiskLevel"]]:
            return []
        ip = event.data.get("ipAddress")
        types = list(event.data.get("riskEventTypes") or [])
        return [
            Finding(
                subject=f"user:{user_id}",
                title="Risky sign-in",
                description=f"A sign-in of {upn} from {ip or 'an unknown address'} was at {level} risk "
                f"({', '.join(types) or 'no detection named'}).",
                severity=SEVERITY_OF_RISK[level],
                stories=[THREAT_DETECTION],
                intent=[INITIAL_ACCESS],
                entities=[user_entity(user_id, upn)] + ([ip_entity(ip)] if ip else []),
                evidence=[f"Sign-in risk {level}", *types],
                entity_user=upn or user_id,
                entity_ip=ip,
                threat_score=RISK_RANK[level] * 20,
            )
        ]


class ImpossibleTravel(AlertPolicy):
    key = "impossibleTravel"
    name = "Impossible travel"
    description = "Two sign-ins of one user from places too far apart for the time between them."
    event_types = (SIGN_IN, SIGN_IN_OFFLINE_RISK)

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        if "unlikelyTravel" not in (event.data.get("riskEventTypes") or []):
            return []
        user_id, upn = _sign_in_user(event)
        ip = event.data.get("ipAddress")
        where = ", ".join(str(v) for v in (event.data.get("city"), event.data.get("country")) if v)
        return [
            Finding(
                subject=f"user:{user_id}",
                title="Impossible travel activity",
                description=f"{upn} signed in from {where or ip} too soon after a sign-in from far away.",
                severity=HIGH,
                stories=[THREAT_DETECTION],
                intent=[INITIAL_ACCESS],
                entities=[user_entity(user_id, upn)] + ([ip_entity(ip)] if ip else []),
                evidence=["unlikelyTravel"],
                entity_user=upn or user_id,
                entity_ip=ip,
                threat_score=60,
            )
        ]


class ConfirmedCompromise(AlertPolicy):
    key = "confirmedCompromise"
    name = "User confirmed compromised"
    description = (
        "An admin or a partner confirmed a user compromised, or reported threat intelligence on one."
    )
    event_types = ("protection.risky_user.confirmed_compromised", "protection.threat_intelligence.reported")

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        upn = event.data.get("userPrincipalName")
        who = event.actor.get("name") or event.actor.get("id") or "someone"
        confirmed = event.type.endswith("confirmed_compromised")
        return [
            Finding(
                subject=f"user:{event.subject_id}",
                title="User confirmed compromised" if confirmed else "Threat intelligence on a user",
                description=(
                    f"{who} confirmed the user {upn or event.subject_id} compromised."
                    if confirmed
                    else f"{who} reported threat intelligence on the user {upn or event.subject_id}."
                ),
                severity=HIGH,
                stories=[THREAT_DETECTION],
                intent=[CREDENTIAL_ACCESS],
                entities=[user_entity(event.subject_id, upn)],
                evidence=[f"Reported by {who}"],
                entity_user=upn or event.subject_id,
                threat_score=90,
            )
        ]
