"""Graph's directory audit log (``/auditLogs/directoryAudits``), read from the audit entries that the audit
job writes for every directory and credential event."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth import permissions as perm
from trustplane.auth.deps import DbSession, requires
from trustplane.auth.permissions import Principal
from trustplane.core.errors import NotFound
from trustplane.core.ids import is_uuid
from trustplane.directory.models import AuditEntry
from trustplane.directory.repository import AuditRepository
from trustplane.directory.service import property_name
from trustplane.graph.api import entity_body, json
from trustplane.graph.properties import EntityType, Prop
from trustplane.graph.query import list_collection

router = APIRouter(prefix="/v1.0", tags=["graph"])

READ_AUDIT = (perm.AUDITLOG_READ_ALL, perm.DIRECTORY_READ_ALL, perm.DIRECTORY_READWRITE_ALL)


def _initiated_by(entry: AuditEntry) -> dict[str, Any]:
    actor = entry.actor or {}
    if actor.get("type") in ("app", "api_token"):
        app = {"servicePrincipalId": actor.get("id"), "displayName": actor.get("name"), "appId": None}
        return {"app": app, "user": None}
    return {
        "app": {"displayName": actor.get("name") or actor.get("type"), "servicePrincipalId": None},
        "user": None,
    }


def _target_resources(entry: AuditEntry) -> list[dict[str, Any]]:
    details = entry.details or {}
    changes = details.get("changes") or {}
    modified = [
        {
            "displayName": property_name(name),
            "oldValue": _text(change.get("old")),
            "newValue": _text(change.get("new")),
        }
        for name, change in changes.items()
        if isinstance(change, dict)
    ]
    for key in ("memberId",):
        if key in details:
            modified.append({"displayName": key, "oldValue": None, "newValue": _text(details[key])})
    return [
        {
            "id": entry.target_id,
            "type": entry.target_type[:1].upper() + entry.target_type[1:],
            "displayName": details.get("display_name") or details.get("displayName"),
            "userPrincipalName": details.get("user_principal_name") or details.get("userPrincipalName"),
            "modifiedProperties": modified,
        }
    ]


def _text(value: Any) -> str | None:
    """Graph carries modified values as JSON text."""
    if value is None:
        return None
    return orjson.dumps(value).decode()


def _operation_type(entry: AuditEntry) -> str:
    verb = entry.activity.split(" ", 1)[0]
    return {
        "Add": "Add",
        "Update": "Update",
        "Delete": "Delete",
        "Remove": "Unassign",
        "Revoke": "Delete",
    }.get(verb, "Other")


DIRECTORY_AUDIT = EntityType(
    "directoryAudit",
    AuditEntry,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("category", "category", writable=False, orderable=True),
        Prop("correlationId", "event_id", writable=False),
        Prop("activityDisplayName", "activity", writable=False, orderable=True),
        Prop("activityDateTime", "activity_at", "datetime", writable=False, orderable=True),
        Prop("result", "result", writable=False),
        Prop("resultReason", "id", "object", writable=False, compute=lambda e: ""),
        Prop("loggedByService", "id", "object", writable=False, compute=lambda e: "Core Directory"),
        Prop("operationType", "id", "object", writable=False, compute=_operation_type),
        Prop("initiatedBy", "actor", "object", writable=False, compute=_initiated_by),
        Prop("targetResources", "details", "object", writable=False, compute=_target_resources),
        Prop("additionalDetails", "id", "object", writable=False, compute=lambda e: []),
    ),
    default_order="activityDateTime desc",
)


@router.get("/auditLogs/directoryAudits", summary="List directory audit entries (newest first)")
async def list_directory_audits(
    request: Request,
    principal: Principal = Depends(requires(*READ_AUDIT)),
    session: AsyncSession = DbSession,
) -> Response:
    base = AuditRepository(session, principal.tenant_id).select()
    return json(await list_collection(request, session, DIRECTORY_AUDIT, base, "auditLogs/directoryAudits"))


@router.get("/auditLogs/directoryAudits/{audit_id}", summary="Get a directory audit entry")
async def get_directory_audit(
    audit_id: str,
    request: Request,
    principal: Principal = Depends(requires(*READ_AUDIT)),
    session: AsyncSession = DbSession,
) -> Response:
    entry = await AuditRepository(session, principal.tenant_id).get(audit_id) if is_uuid(audit_id) else None
    if entry is None:
        raise NotFound(f"Resource '{audit_id}' does not exist.")
    return json(entity_body(request, DIRECTORY_AUDIT, entry, "auditLogs/directoryAudits/$entity"))
