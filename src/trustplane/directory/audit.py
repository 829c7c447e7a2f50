"""The audit log: one entry per directory or credential event, written by an idempotent job handler."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.events import subscribe
from trustplane.core.jobs import handler
from trustplane.core.models import Event, Job
from trustplane.directory.models import AuditEntry
from trustplane.directory.repository import AuditRepository

AUDIT_JOB = "audit.record"

# event type -> (activity, category), in the words Entra's directory audit uses.
ACTIVITIES: dict[str, tuple[str, str]] = {
    "directory.user.created": ("Add user", "UserManagement"),
    "directory.user.updated": ("Update user", "UserManagement"),
    "directory.user.deleted": ("Delete user", "UserManagement"),
    "directory.user.sign_in_sessions_revoked": ("Revoke sign in sessions", "UserManagement"),
    "directory.group.created": ("Add group", "GroupManagement"),
    "directory.group.updated": ("Update group", "GroupManagement"),
    "directory.group.deleted": ("Delete group", "GroupManagement"),
    "directory.group.member_added": ("Add member to group", "GroupManagement"),
    "directory.group.member_removed": ("Remove member from group", "GroupManagement"),
    "directory.application.created": ("Add application", "ApplicationManagement"),
    "auth.api_token.created": ("Add API token", "ApplicationManagement"),
    "auth.api_token.revoked": ("Revoke API token", "ApplicationManagement"),
}

subscribe("directory.", AUDIT_JOB)
subscribe("auth.", AUDIT_JOB)


def _redact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if "password" not in k.lower() and "secret" not in k.lower()}


@handler(AUDIT_JOB)
async def record_audit(session: AsyncSession, job: Job) -> None:
    event = await session.get(Event, job.payload["event_id"])
    if event is None:
        return
    audit = AuditRepository(session, event.tenant_id)
    if await audit.for_event(event.id) is not None:
        return  # already recorded by an earlier attempt: at-least-once delivery, exactly-once effect
    activity, category = ACTIVITIES.get(event.type, (event.type, "Other"))
    audit.add(
        AuditEntry(
            event_id=event.id,
            activity=activity,
            category=category,
            target_type=event.subject_type,
            target_id=event.subject_id,
            actor=event.actor,
            details=_redact(event.data),
            activity_at=event.created_at,
        )
    )
