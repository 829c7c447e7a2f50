"""Graph v1.0 identity protection face: ``/identityProtection/riskyUsers`` (list, get, history and the
confirmCompromised / confirmSafe / dismiss actions), ``/identityProtection/riskDetections`` and
``/auditLogs/signIns``. Thin: check permission, read the body, call ``protection.service``, render Graph
JSON; lists go through ``graph.query`` (OData $filter / $orderby / $select / $top / $skiptoken)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth import permissions as perm
from trustplane.auth.deps import DbSession, ReadSession, requires
from trustplane.auth.permissions import Principal
from trustplane.core.bodies import read_json_object
from trustplane.core.errors import BadRequest, NotFound
from trustplane.core.ids import is_uuid
from trustplane.graph.api import actor_of, entity_body, json, no_content
from trustplane.graph.properties import EntityType, Prop
from trustplane.graph.query import list_collection
from trustplane.protection import service
from trustplane.protection.models import RiskDetection, RiskyUser, RiskyUserHistory, SignIn
from trustplane.protection.repository import (
    RiskDetectionRepository,
    RiskyUserHistoryRepository,
    RiskyUserRepository,
    SignInRepository,
)

router = APIRouter(prefix="/v1.0", tags=["graph: identity protection"])
READ_RISKY_USERS = Depends(requires(*perm.READ_RISKY_USERS))
WRITE_RISKY_USERS = Depends(requires(*perm.WRITE_RISKY_USERS))
READ_RISK_EVENTS = Depends(requires(*perm.READ_RISK_EVENTS))
READ_SIGN_INS = Depends(requires(*perm.READ_SIGN_INS))

# Members of Graph's legacy riskEventType enum (signIn.riskEventTypes); riskEventTypes_v2 is open.
LEGACY_RISK_EVENT_TYPES = frozenset(
    {
        "unlikelyTravel",
        "anonymizedIPAddress",
        "maliciousIPAddress",
        "unfamiliarFeatures",
        "malwareInfectedIPAddress",
        "suspiciousIPAddress",
        "leakedCredentials",
        "investigationsThreatIntelligence",
        "generic",
        "adminConfirmedUserCompromised",
        "mcasImpossibleTravel",
        "mcasSuspiciousInboxManipulationRules",
        "investigationsThreatIntelligenceSigninLinked",
        "maliciousIPAddressValidCredentialsBlockedIP",
    }
)


def _risk_props() -> tuple[Prop, ...]:
    return (
        Prop("riskLevel", "risk_level", writable=False, orderable=True),
        Prop("riskState", "risk_state", writable=False, orderable=True),
        Prop("riskDetail", "risk_detail", writable=False),
    )


RISKY_USER = EntityType(
    "riskyUser",
    RiskyUser,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("isDeleted", "is_deleted", "boolean", writable=False),
        Prop("isProcessing", "is_processing", "boolean", writable=False),
        *_risk_props(),
        Prop("riskLastUpdatedDateTime", "risk_last_updated_at", "datetime", writable=False, orderable=True),
        Prop("userDisplayName", "user_display_name", writable=False, orderable=True),
        Prop("userPrincipalName", "user_principal_name", writable=False, orderable=True),
    ),
    default_order="riskLastUpdatedDateTime desc",
)

HISTORY_ITEM = EntityType(
    "riskyUserHistoryItem",
    RiskyUserHistory,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("isDeleted", "id", "object", writable=False, compute=lambda h: False),
        Prop("isProcessing", "id", "object", writable=False, compute=lambda h: False),
        *_risk_props(),
        Prop("riskLastUpdatedDateTime", "risk_last_updated_at", "datetime", writable=False, orderable=True),
        Prop("userDisplayName", "user_display_name", writable=False),
        Prop("userPrincipalName", "user_principal_name", writable=False),
        Prop("userId", "user_id", writable=False),
        Prop("initiatedBy", "initiated_by", writable=False),
        Prop(
            "activity",
            "activity_detail",
            "object",
            writable=False,
            compute=lambda h: {"detail": h.activity_detail, "riskEventTypes": list(h.risk_event_types or [])},
        ),
    ),
    default_order="riskLastUpdatedDateTime desc",
)


def _location(row: Any) -> dict[str, Any]:
    coordinates = None
    if getattr(row, "latitude", None) is not None:
        coordinates = {"latitude": row.latitude, "longitude": row.longitude, "altitude": None}
    return {
        "city": row.city,
        "state": getattr(row, "state", None),
        "countryOrRegion": row.country,
        "geoCoordinates": coordinates,
    }


RISK_DETECTION = EntityType(
    "riskDetection",
    RiskDetection,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("requestId", "sign_in_id", writable=False),
        Prop("correlationId", "correlation_id", writable=False),
        Prop("riskEventType", "risk_event_type", writable=False, orderable=True),
        *_risk_props(),
        Prop("source", "source", writable=False),
        Prop("detectionTimingType", "detection_timing_type", writable=False),
        Prop("activity", "activity", writable=False),
        Prop("tokenIssuerType", "id", "object", writable=False, compute=lambda d: "AzureAD"),
        Prop("ipAddress", "ip_address", writable=False),
        Prop("location", "country", "object", writable=False, compute=_location),
        Prop("activityDateTime", "activity_at", "datetime", writable=False, orderable=True),
        Prop("detectedDateTime", "detected_at", "datetime", writable=False, orderable=True),
        Prop("lastUpdatedDateTime", "last_updated_at", "datetime", writable=False, orderable=True),
        Prop("userId", "user_id", writable=False),
        Prop("userDisplayName", "user_display_name", writable=False),
        Prop("userPrincipalName", "user_principal_name", writable=False),
        Prop(
            "additionalInfo",
            "additional_info",
            "object",
            writable=False,
            compute=lambda d: orjson.dumps(
                [{"Key": k, "Value": v} for k, v in (d.additional_info or {}).items()]
            ).decode(),
        ),
    ),
    default_order="detectedDateTime desc",
)


def _device(row: SignIn) -> dict[str, Any]:
    detail = row.device_detail or {}
    keys = ("deviceId", "displayName", "operatingSystem", "browser", "isCompliant", "isManaged", "trustType")
    return {k: detail.get(k) for k in keys}


def _status(row: SignIn) -> dict[str, Any]:
    return {"errorCode": row.error_code, "failureReason": row.failure_reason, "additionalDetails": None}


SIGN_IN = EntityType(
    "signIn",
    SignIn,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("createdDateTime", "created_at", "datetime", writable=False, orderable=True),
        Prop("userDisplayName", "user_display_name", writable=False),
        Prop("userPrincipalName", "user_principal_name", writable=False, orderable=True),
        Prop("userId", "user_id", writable=False),
        Prop("appId", "app_id", writable=False),
        Prop("appDisplayName", "app_display_name", writable=False),
        Prop("ipAddress", "ip_address", writable=False),
        Prop("clientAppUsed", "client_app_used", writable=False),
        Prop("userAgent", "user_agent", writable=False),
        Prop("correlationId", "correlation_id", writable=False),
        Prop("conditionalAccessStatus", "conditional_access_status", writable=False),
        Prop("isInteractive", "is_interactive", "boolean", writable=False),
        Prop("riskDetail", "risk_detail", writable=False),
        Prop("riskLevelAggregated", "risk_level_aggregated", writable=False),
        Prop("riskLevelDuringSignIn", "risk_level_during_sign_in", writable=False),
        Prop("riskState", "risk_state", writable=False),
        Prop(
            "riskEventTypes",
            "risk_event_types",
            "object",
            writable=False,
            compute=lambda s: [t for t in s.risk_event_types or [] if t in LEGACY_RISK_EVENT_TYPES],
        ),
        Prop(
            "riskEventTypes_v2",
            "risk_event_types",
            "object",
            writable=False,
            compute=lambda s: list(s.risk_event_types or []),
        ),
        Prop("status", "error_code", "object", writable=False, compute=_status),
        Prop("deviceDetail", "device_detail", "object", writable=False, compute=_device),
        Prop("location", "country", "object", writable=False, compute=_location),
        Prop(
            "appliedConditionalAccessPolicies",
            "applied_policies",
            "object",
            writable=False,
            compute=lambda s: list(s.applied_policies or []),
        ),
    ),
    default_order="createdDateTime desc",
)


# riskDetail members added after unknownFutureValue: Graph shows them only to a client that asks with
# ``Prefer: include-unknown-enum-members`` and answers ``unknownFutureValue`` to the others.
EVOLVED_RISK_DETAILS = frozenset(
    {
        "m365DAdminDismissedDetection",
        "adminConfirmedServicePrincipalCompromised",
        "adminDismissedAllRiskForServicePrincipal",
        "userChangedPasswordOnPremises",
        "adminDismissedRiskForSignIn",
        "adminConfirmedAccountSafe",
        "microsoftRevokedSessions",
    }
)


def _answer(request: Request, body: dict[str, Any]) -> Response:
    if "include-unknown-enum-members" not in request.headers.get("prefer", "").lower():
        for item in body.get("value", [body]):
            if item.get("riskDetail") in EVOLVED_RISK_DETAILS:
                item["riskDetail"] = "unknownFutureValue"
            activity = item.get("activity")
            if isinstance(activity, dict) and activity.get("detail") in EVOLVED_RISK_DETAILS:
                activity["detail"] = "unknownFutureValue"
    return json(body)


def _not_found(object_id: str) -> NotFound:
    return NotFound(
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present."
    )


async def _risky_user(session: AsyncSession, tenant_id: str, user_id: str) -> RiskyUser:
    row = await RiskyUserRepository(session, tenant_id).get(user_id) if is_uuid(user_id) else None
    if row is None:
        raise _not_found(user_id)
    return row


# ---------------------------------------------------------------- risky users


@router.get("/identityProtection/riskyUsers", summary="List risky users")
async def list_risky_users(
    request: Request, principal: Principal = READ_RISKY_USERS, session: AsyncSession = ReadSession
) -> Response:
    base = RiskyUserRepository(session, principal.tenant_id).select()
    return _answer(
        request, await list_collection(request, session, RISKY_USER, base, "identityProtection/riskyUsers")
    )


async def _user_ids(request: Request) -> list[str]:
    body = await read_json_object(request)
    unknown = [k for k in body if k != "userIds" and not k.startswith("@odata.")]
    if unknown:
        raise BadRequest(
            f"'{unknown[0]}' is not a parameter of this action; it takes 'userIds'.",
            code="Request_BadRequest",
        )
    user_ids = body.get("userIds")
    if not isinstance(user_ids, list):
        raise BadRequest(
            "The parameter 'userIds' is required: a collection of user ids.", code="Request_BadRequest"
        )
    return user_ids


@router.post(
    "/identityProtection/riskyUsers/confirmCompromised", status_code=204, summary="Confirm users compromised"
)
async def confirm_compromised(
    request: Request, principal: Principal = WRITE_RISKY_USERS, session: AsyncSession = DbSession
) -> Response:
    await service.confirm_compromised(
        session, principal.tenant_id, actor_of(principal), await _user_ids(request)
    )
    return no_content()


@router.post("/identityProtection/riskyUsers/confirmSafe", status_code=204, summary="Confirm users safe")
async def confirm_safe(
    request: Request, principal: Principal = WRITE_RISKY_USERS, session: AsyncSession = DbSession
) -> Response:
    await service.confirm_safe(session, principal.tenant_id, actor_of(principal), await _user_ids(request))
    return no_content()


@router.post("/identityProtection/riskyUsers/dismiss", status_code=204, summary="Dismiss users' risk")
async def dismiss(
    request: Request, principal: Principal = WRITE_RISKY_USERS, session: AsyncSession = DbSession
) -> Response:
    await service.dismiss(session, principal.tenant_id, actor_of(principal), await _user_ids(request))
    return no_content()


@router.get("/identityProtection/riskyUsers/{user_id}", summary="Get a risky user")
async def get_risky_user(
    user_id: str,
    request: Request,
    principal: Principal = READ_RISKY_USERS,
    session: AsyncSession = ReadSession,
) -> Response:
    row = await _risky_user(session, principal.tenant_id, user_id)
    return _answer(request, entity_body(request, RISKY_USER, row, "identityProtection/riskyUsers/$entity"))


@router.get("/identityProtection/riskyUsers/{user_id}/history", summary="List a risky user's history")
async def list_history(
    user_id: str,
    request: Request,
    principal: Principal = READ_RISKY_USERS,
    session: AsyncSession = ReadSession,
) -> Response:
    await _risky_user(session, principal.tenant_id, user_id)
    base = (
        RiskyUserHistoryRepository(session, principal.tenant_id)
        .select()
        .where(RiskyUserHistory.user_id == user_id)
    )
    fragment = f"identityProtection/riskyUsers('{user_id}')/history"
    return _answer(request, await list_collection(request, session, HISTORY_ITEM, base, fragment))


# ---------------------------------------------------------------- risk detections


@router.get("/identityProtection/riskDetections", summary="List risk detections")
async def list_risk_detections(
    request: Request, principal: Principal = READ_RISK_EVENTS, session: AsyncSession = ReadSession
) -> Response:
    base = RiskDetectionRepository(session, principal.tenant_id).select()
    return _answer(
        request,
        await list_collection(request, session, RISK_DETECTION, base, "identityProtection/riskDetections"),
    )


@router.get("/identityProtection/riskDetections/{detection_id}", summary="Get a risk detection")
async def get_risk_detection(
    detection_id: str,
    request: Request,
    principal: Principal = READ_RISK_EVENTS,
    session: AsyncSession = ReadSession,
) -> Response:
    row = (
        await RiskDetectionRepository(session, principal.tenant_id).get(detection_id)
        if is_uuid(detection_id)
        else None
    )
    if row is None:
        raise _not_found(detection_id)
    return _answer(
        request, entity_body(request, RISK_DETECTION, row, "identityProtection/riskDetections/$entity")
    )


# ---------------------------------------------------------------- sign-in log


@router.get("/auditLogs/signIns", summary="List sign-ins (newest first)")
async def list_sign_ins(
    request: Request, principal: Principal = READ_SIGN_INS, session: AsyncSession = ReadSession
) -> Response:
    base = SignInRepository(session, principal.tenant_id).select()
    return _answer(request, await list_collection(request, session, SIGN_IN, base, "auditLogs/signIns"))


@router.get("/auditLogs/signIns/{sign_in_id}", summary="Get a sign-in")
async def get_sign_in(
    sign_in_id: str,
    request: Request,
    principal: Principal = READ_SIGN_INS,
    session: AsyncSession = ReadSession,
) -> Response:
    row = (
        await SignInRepository(session, principal.tenant_id).get(sign_in_id) if is_uuid(sign_in_id) else None
    )
    if row is None:
        raise _not_found(sign_in_id)
    return _answer(request, entity_body(request, SIGN_IN, row, "auditLogs/signIns/$entity"))
