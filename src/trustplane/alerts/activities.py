"""Domain events → activities, pure: which event becomes which activity (or several: a discovery slice
becomes one per app and user it saw). Sign-ins come from identity protection's sign-in log
(``protection.sign_in.recorded``, whatever identity provider the sign-in came through), admin changes from
the directory, conditional access, identity protection and API tokens, provisioning from the SCIM face (the
directory events its calls make, told apart by the actor's channel), discovery from processed uploads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trustplane.core.clock import to_utc
from trustplane.directory.audit import ACTIVITIES as AUDITED

# MCAS source types (api-activities.md): 2 app connector, 5 discovery.
SOURCE_APP_CONNECTOR = 2
SOURCE_DISCOVERY = 5
# A discovery slice makes at most this many activities (one per app and user); the rest are counted in the
# last one's details.
MAX_DISCOVERY_ACTIVITIES = 1000

SIGN_IN = "protection.sign_in.recorded"
SIGN_IN_OFFLINE_RISK = "protection.sign_in.offline_risk"  # read by policies; no second activity
DISCOVERY_APPS_SEEN = "discovery.apps.seen"
APP_DISCOVERED = "discovery.app.discovered"

# Events the system itself makes (no admin acted): event type -> (description, category, source).
SYSTEM_ACTIONS: dict[str, tuple[str, str, int]] = {
    APP_DISCOVERED: ("New app discovered:", "Discovery", SOURCE_DISCOVERY),
    "discovery.upload.processed": ("Discovery log processed:", "Discovery", SOURCE_DISCOVERY),
}

# Admin actions: the audit log's names (every part adds its own to ``directory.audit.ACTIVITIES``), and those
# the audit log does not record. event type -> (description, category); the actor performed it on the subject.
MORE_ACTIONS: dict[str, tuple[str, str]] = {
    "protection.user_risk.changed": ("User risk changed", "IdentityProtection"),
    "discovery.upload.submitted": ("Submit discovery log", "Discovery"),
    "discovery.app.governed": ("Govern discovered app", "Discovery"),
    "discovery.scoreMetrics.set": ("Set discovery score metrics", "Discovery"),
    "discovery.customParser.set": ("Set custom log parser", "Discovery"),
}


def admin_action(event_type: str) -> tuple[str, str] | None:
    return AUDITED.get(event_type) or MORE_ACTIONS.get(event_type)


# Changes made by the system itself (risk recomputed by a sign-in) are not admin events.
NOT_ADMIN = {"protection.user_risk.changed"}


@dataclass
class ActivityDraft:
    part: int
    timestamp: int
    action_type: str
    category: str
    description: str
    source: int
    is_admin: bool = False
    succeeded: bool = True
    user_name: str | None = None
    user_id: str | None = None
    ip_address: str | None = None
    country: str | None = None
    city: str | None = None
    app_id: str | None = None
    app_name: str | None = None
    user_agent: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    object_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def user_domain(self) -> str | None:
        if self.user_name and "@" in self.user_name:
            return self.user_name.rsplit("@", 1)[1].lower()
        return None


def epoch_ms(value: datetime) -> int:
    return int(to_utc(value).timestamp() * 1000)


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _clip(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def _sign_in(created_ms: int, data: dict[str, Any], subject_id: str) -> list[ActivityDraft]:
    at = data.get("at")
    timestamp = int(at) if isinstance(at, int) else created_ms
    ok = int(data.get("errorCode") or 0) == 0
    upn = _str(data.get("userPrincipalName"))
    app = _str(data.get("appDisplayName")) or _str(data.get("appId"))
    return [
        ActivityDraft(
            part=0,
            timestamp=timestamp,
            action_type="signIn" if ok else "signInFailed",
            category="SignIn",
            description=f"{'Sign-in' if ok else 'Failed sign-in'} of {upn}" + (f" to {app}" if app else ""),
            source=SOURCE_APP_CONNECTOR,
            succeeded=ok,
            user_name=upn,
            user_id=_str(data.get("userId")),
            ip_address=_str(data.get("ipAddress")),
            country=_str(data.get("country")),
            city=_str(data.get("city")),
            app_id=_str(data.get("appId")),
            app_name=_str(data.get("appDisplayName")),
            user_agent=_str(data.get("userAgent")),
            object_type="signIn",
            object_id=subject_id,
            details=data,
        )
    ]


def _discovery(created_ms: int, data: dict[str, Any], subject_id: str) -> list[ActivityDraft]:
    drafts: list[ActivityDraft] = []
    rows = list(data.get("usage") or [])
    for part, row in enumerate(rows[:MAX_DISCOVERY_ACTIVITIES]):
        user = _str(row.get("user"))
        app_name = _str(row.get("appName")) or _str(row.get("appId"))
        details = dict(row)
        if part == MAX_DISCOVERY_ACTIVITIES - 1 and len(rows) > MAX_DISCOVERY_ACTIVITIES:
            details["notRecorded"] = len(rows) - MAX_DISCOVERY_ACTIVITIES
        drafts.append(
            ActivityDraft(
                part=part,
                timestamp=int(row.get("lastSeen") or created_ms),
                action_type="discovery.appUsed",
                category="Discovery",
                description=f"{user or 'An unidentified user'} used {app_name} "
                f"({row.get('transactions', 0)} transactions, {row.get('bytesUp', 0)} bytes up)",
                source=SOURCE_DISCOVERY,
                user_name=_clip(user, 320),
                ip_address=_clip(_str(row.get("ipAddress")), 64),
                app_id=_str(row.get("appId")),
                app_name=app_name,
                object_type="discoveryUpload",
                object_id=subject_id,
                details=details,
            )
        )
    return drafts


def _redact(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data without anything that names a password or a secret (as the audit log keeps it)."""
    return {k: v for k, v in data.items() if "password" not in k.lower() and "secret" not in k.lower()}


def drafts_for(
    event_type: str,
    subject_type: str,
    subject_id: str,
    actor: dict[str, Any],
    data: dict[str, Any],
    created_ms: int,
) -> list[ActivityDraft]:
    """The activities an event makes (none for events that are no activity)."""
    if event_type == SIGN_IN:
        return _sign_in(created_ms, data, subject_id)
    if event_type == DISCOVERY_APPS_SEEN:
        return _discovery(created_ms, data, subject_id)
    system = SYSTEM_ACTIONS.get(event_type)
    if system is not None:
        label = _str(data.get("name")) or _str(data.get("filename")) or subject_id
        return [
            ActivityDraft(
                part=0,
                timestamp=created_ms,
                action_type=event_type,
                category=system[1],
                description=f"{system[0]} {label}",
                source=system[2],
                app_id=_clip(_str(data.get("appId")), 64),
                app_name=_clip(_str(data.get("name")) if event_type == APP_DISCOVERED else None, 256),
                object_type=subject_type,
                object_id=subject_id,
                object_name=_clip(label, 320),
                details=data,
            )
        ]
    known = admin_action(event_type)
    if known is None:
        return []
    description, category = known
    channel = actor.get("channel") or ""
    provisioning = channel == "scim"
    name = (
        _str(data.get("userPrincipalName"))
        or _str(data.get("user_principal_name"))
        or _str(data.get("displayName"))
        or _str(data.get("display_name"))
        or _str(data.get("app"))
        or _str(data.get("name"))
    )
    performer = _str(actor.get("name")) or _str(actor.get("id"))
    return [
        ActivityDraft(
            part=0,
            timestamp=created_ms,
            action_type=event_type,
            category="Provisioning" if provisioning else category,
            description=("SCIM provisioning: " if provisioning else "")
            + description
            + (f" {name}" if name else "")
            + (f" by {performer}" if performer else ""),
            source=SOURCE_APP_CONNECTOR,
            is_admin=event_type not in NOT_ADMIN,
            user_name=_clip(performer, 320),
            user_id=_clip(_str(actor.get("id")), 36),
            object_type=subject_type,
            object_id=subject_id,
            object_name=_clip(name, 320),
            details={"actor": actor, **_redact(data)},
        )
    ]
