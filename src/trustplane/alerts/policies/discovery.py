"""Cloud discovery policies on processed uploads: a newly discovered app whose risk score is at or below a
threshold, an unsanctioned app in use, and unusual upload volume to an app (against the user's own
baseline for that app)."""

from __future__ import annotations

from typing import Any

from trustplane.alerts.activities import APP_DISCOVERED, DISCOVERY_APPS_SEEN, ActivityDraft
from trustplane.alerts.policies.base import (
    COMPLIANCE,
    DISCOVERY,
    EXFILTRATION,
    HIGH,
    MEDIUM,
    AlertPolicy,
    EventView,
    Finding,
    PolicyContext,
    service_entity,
    user_entity,
)


def _apps(event: EventView) -> dict[str, list[dict[str, Any]]]:
    """The slice's usage rows by app."""
    by_app: dict[str, list[dict[str, Any]]] = {}
    for row in event.data.get("usage") or []:
        if row.get("appId"):
            by_app.setdefault(str(row["appId"]), []).append(row)
    return by_app


class NewRiskyApp(AlertPolicy):
    key = "newRiskyApp"
    name = "New risky app"
    description = (
        "An app seen for the first time in this tenant's discovery data (discovery announces each app once "
        "per tenant) has a risk score at or below the threshold (0-10, lower is riskier; an app whose score "
        "is unknown does not count)."
    )
    event_types = (APP_DISCOVERED,)
    defaults = {"maximumRiskScore": 4}

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        score = event.data.get("riskScore")
        if not isinstance(score, int) or score > thresholds["maximumRiskScore"]:
            return []
        app_id = str(event.data.get("appId") or event.subject_id)
        name = str(event.data.get("name") or app_id)
        users = int(event.data.get("userCount") or 0)
        return [
            Finding(
                subject=f"app:{app_id}",
                title=f"New risky app: {name}",
                description=f"{name} (risk score {score}) was discovered for the first time, used by "
                f"{users} user(s) in {event.data.get('transactionCount', 0)} transactions.",
                severity=HIGH if score <= 2 else MEDIUM,
                stories=[DISCOVERY],
                entities=[service_entity(app_id, name)],
                evidence=[f"Risk score {score}", f"{users} user(s)"],
                entity_app=app_id,
                threat_score=(10 - score) * 10,
            )
        ]


class UnsanctionedAppUse(AlertPolicy):
    key = "unsanctionedAppUse"
    name = "Unsanctioned app in use"
    description = "Discovery data shows traffic to an app this tenant marked unsanctioned."
    event_types = (DISCOVERY_APPS_SEEN,)

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        findings = []
        for app_id, rows in sorted(_apps(event).items()):
            name, _, status = await ctx.app_risk(app_id)
            if status != "unsanctioned":
                continue
            users = sorted({str(r.get("user")) for r in rows if r.get("user")})
            findings.append(
                Finding(
                    subject=f"app:{app_id}",
                    title=f"Unsanctioned app in use: {name}",
                    description=f"{len(users)} user(s) used {name}, which is unsanctioned.",
                    severity=MEDIUM,
                    stories=[DISCOVERY, COMPLIANCE],
                    entities=[service_entity(app_id, name)] + [user_entity(None, u) for u in users[:10]],
                    evidence=[f"{sum(int(r.get('transactions', 0)) for r in rows)} transactions"],
                    entity_app=app_id,
                    threat_score=40,
                )
            )
        return findings


class UnusualUploadVolume(AlertPolicy):
    key = "unusualUploadVolume"
    name = "Unusual upload volume to an app"
    description = (
        "A user uploaded more to an app in one discovery upload (per day in it) than their own baseline for "
        "that app: above mean + deviations x standard deviation, once the baseline has enough samples, and "
        "at least the minimum number of bytes."
    )
    event_types = (DISCOVERY_APPS_SEEN,)
    defaults = {"deviations": 3.0, "minimumSamples": 5, "minimumBytes": 50_000_000}

    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]:
        findings = []
        rows = [r for r in event.data.get("usage") or [] if r.get("user") and r.get("appId")]
        before = await ctx.observe(
            self.key, {f"{r['appId']}|{r['user']}"[:400]: float(r.get("bytesUp") or 0) for r in rows}
        )
        for row in rows:
            user, app_id = row["user"], row["appId"]
            sent = float(row.get("bytesUp") or 0)
            count, mean, std = before[f"{app_id}|{user}"[:400]]
            if count < thresholds["minimumSamples"] or sent < thresholds["minimumBytes"]:
                continue
            if sent <= mean + thresholds["deviations"] * std:
                continue
            name, _, _ = await ctx.app_risk(str(app_id))
            findings.append(
                Finding(
                    subject=f"upload:{app_id}|{user}",
                    title=f"Unusual upload volume to {name}",
                    description=f"{user} uploaded {int(sent)} bytes to {name}; their usual is "
                    f"{int(mean)} ± {int(std)} bytes over {count} observations.",
                    severity=MEDIUM,
                    stories=[DISCOVERY],
                    intent=[EXFILTRATION],
                    entities=[user_entity(None, str(user)), service_entity(str(app_id), name)],
                    evidence=[f"{int(sent)} bytes up", f"baseline {int(mean)} ± {int(std)}"],
                    entity_user=str(user),
                    entity_app=str(app_id),
                    threat_score=50,
                )
            )
        return findings
