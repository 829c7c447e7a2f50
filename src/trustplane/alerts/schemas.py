"""The MCAS wire format of alerts and activities: request bodies (list, close) parsed strictly, the
filterable fields of each resource with their MCAS types and operators, and the records as MCAS shows them
(ids as strings, times in epoch milliseconds, ``statusValue`` / ``severityValue`` /
``resolutionStatusValue`` enumerations).

Where TrustPlane's data differs from MCAS's, the field keeps MCAS's name and takes TrustPlane's value:
``service`` / ``entity.service`` are app ids as strings (a catalogue id such as ``dropbox`` or an app's
client id; MCAS's are integers), ``alertType`` / ``entity.policy`` are policy keys (``riskyUser``, …)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import false, true

from trustplane.alerts.filters import BOOLEAN, INTEGER, STRING, TIMESTAMP, Field, field
from trustplane.alerts.models import Activity, Alert, WebhookDelivery, WebhookSubscription
from trustplane.core.clock import iso_z
from trustplane.core.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 100  # MCAS: "limited to a maximum of 100 items"
MAX_SKIP = 10_000_000

ACTIVITY_FIELDS: dict[str, Field] = {
    "service": field(STRING, "eq,neq", Activity.app_id),
    "activity.id": field(STRING, "eq", Activity.id),
    "actionType": field(STRING, "contains,eq,neq,isset,isnotset", Activity.action_type),
    "activity.eventActionType": field(STRING, "eq,neq", Activity.category),
    "activity.type": field(BOOLEAN, "eq", Activity.is_admin),
    "activity.impersonated": field(
        BOOLEAN, "eq", None, custom=lambda _n, v: false() if v else true()
    ),  # TrustPlane records no impersonation: true matches nothing, false everything
    "userAgent.userAgent": field(STRING, "contains,ncontains", Activity.user_agent),
    "location.country": field(STRING, "eq,neq,isset,isnotset", Activity.country),
    "ip.address": field(STRING, "eq,startswith,doesnotstartwith,isset,isnotset,neq", Activity.ip_address),
    "text": field(
        STRING,
        "eq,startswithsingle,text",
        Activity.description,
        text_columns=(Activity.description, Activity.user_name, Activity.app_name, Activity.object_name),
    ),
    "date": field(TIMESTAMP, "lte,gte,range,lte_ndays,gte_ndays", Activity.timestamp),
    "created": field(TIMESTAMP, "lte,gte,range,gt,lt,eq", Activity.created),
    "source": field(INTEGER, "eq,neq", Activity.source),
    "activityObject": field(STRING, "eq,neq", Activity.object_id),
    "entity": field(STRING, "eq,neq,isset,isnotset,startswith", Activity.user_id, entity=True),
    "user.username": field(STRING, "eq,neq,isset,isnotset,startswith", Activity.user_name),
    "user.domain": field(STRING, "eq,neq,isset,isnotset", Activity.user_domain),
}

ALERT_ID = Alert.id
ALERT_FIELDS: dict[str, Field] = {
    "entity.entity": field(STRING, "eq,neq", Alert.entity_user, entity=True),
    "entity.ip": field(STRING, "eq,neq", Alert.entity_ip),
    "entity.service": field(STRING, "eq,neq", Alert.entity_app),
    "entity.policy": field(STRING, "eq,neq", Alert.policy),
    "alertOpen": field(
        BOOLEAN,
        "eq",
        None,
        custom=lambda _n, v: Alert.resolution_status == 0 if v else Alert.resolution_status != 0,
    ),
    "severity": field(INTEGER, "eq,neq", Alert.severity),
    "resolutionStatus": field(INTEGER, "eq,neq", Alert.resolution_status),
    "read": field(BOOLEAN, "eq", None, custom=lambda _n, v: Alert.status != 0 if v else Alert.status == 0),
    "date": field(TIMESTAMP, "lte,gte,range,lte_ndays,gte_ndays", Alert.timestamp),
    "resolutionDate": field(TIMESTAMP, "lte,gte,range", Alert.resolve_time),
    "risk": field(INTEGER, "eq,neq", Alert.threat_score),
    "alertType": field(STRING, "eq,neq", Alert.policy),
    "id": field(STRING, "eq,neq", Alert.id),
}

LIST_KEYS = {"filters", "skip", "limit", "sortField", "sortDirection"}


@dataclass(frozen=True)
class ListRequest:
    filters: dict[str, Any]
    skip: int
    limit: int
    sort_field: str
    descending: bool


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be an integer from {low} to {high}; got {value!r}.")
    return value


def list_request(body: dict[str, Any], sort_fields: tuple[str, ...]) -> ListRequest:
    unknown = sorted(set(body) - LIST_KEYS)
    if unknown:
        raise BadRequest(f"Unknown parameters {unknown}; a list takes {sorted(LIST_KEYS)}.")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise BadRequest('\'filters\' must be an object: {"field": {"operator": value}}.')
    sort_field = body.get("sortField", sort_fields[0])
    if sort_field not in sort_fields:
        raise BadRequest(f"'sortField' is one of {list(sort_fields)}; got {sort_field!r}.")
    direction = body.get("sortDirection", "desc")
    if direction not in ("asc", "desc"):
        raise BadRequest(f"'sortDirection' is 'asc' or 'desc'; got {direction!r}.")
    return ListRequest(
        filters=filters,
        skip=_int("skip", body.get("skip", 0), 0, MAX_SKIP),
        limit=_int("limit", body.get("limit", DEFAULT_LIMIT), 1, MAX_LIMIT),
        sort_field=str(sort_field),
        descending=direction == "desc",
    )


def activity_order(request: ListRequest) -> list[Any]:
    # ``created`` is the order activities were saved in (their sequence): new ones only ever come last.
    columns = [Activity.seq] if request.sort_field == "created" else [Activity.timestamp, Activity.seq]
    return [c.desc() if request.descending else c.asc() for c in columns]


def alert_order(request: ListRequest) -> list[Any]:
    columns = (
        [Alert.severity, Alert.seq] if request.sort_field == "severity" else [Alert.timestamp, Alert.seq]
    )
    return [c.desc() if request.descending else c.asc() for c in columns]


CLOSE_KEYS = {
    "filters",
    "comment",
    "reasonId",
    "sendFeedback",
    "feedbackText",
    "allowContact",
    "contactEmail",
}


@dataclass(frozen=True)
class CloseRequest:
    ids: list[str] | None  # from filters.id.eq (or the path's pk); None when closing by other filters
    other_filters: dict[str, Any]
    comment: str | None
    reason_id: int | None
    feedback: dict[str, Any] | None


def _opt_str(name: str, value: Any, size: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > size:
        raise BadRequest(f"'{name}' must be a string of at most {size} characters.")
    return value


def close_request(body: dict[str, Any], pk: str | None = None) -> CloseRequest:
    unknown = sorted(set(body) - CLOSE_KEYS)
    if unknown:
        raise BadRequest(f"Unknown parameters {unknown}; closing takes {sorted(CLOSE_KEYS)}.")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise BadRequest('\'filters\' must be an object: {"field": {"operator": value}}.')
    other = dict(filters)
    ids: list[str] | None = None
    id_key = next((k for k in other if k.lower() == "id"), None)
    if id_key is not None and isinstance(other[id_key], dict) and set(other[id_key]) == {"eq"}:
        raw = other.pop(id_key)["eq"]
        raw = raw if isinstance(raw, list) else [raw]
        if not raw or not all(isinstance(i, str) and i and "\x00" not in i for i in raw) or len(raw) > 1000:
            raise BadRequest("'filters.id.eq' is a list of 1 to 1000 alert ids.")
        ids = list(dict.fromkeys(raw))
    if pk is not None:
        if filters:
            raise BadRequest("Closing one alert by its id takes no filters.")
        ids = [pk]
    reason = body.get("reasonId")
    if reason is not None and (isinstance(reason, bool) or not isinstance(reason, int)):
        raise BadRequest(f"'reasonId' must be an integer; got {reason!r}.")
    for flag in ("sendFeedback", "allowContact"):
        if flag in body and not isinstance(body[flag], bool):
            raise BadRequest(f"'{flag}' must be true or false.")
    feedback = None
    if body.get("sendFeedback"):
        feedback = {
            "feedbackText": _opt_str("feedbackText", body.get("feedbackText"), 4000),
            "allowContact": bool(body.get("allowContact", False)),
            "contactEmail": (_opt_str("contactEmail", body.get("contactEmail"), 320) or "").strip() or None,
        }
    return CloseRequest(
        ids=ids,
        other_filters=other,
        comment=_opt_str("comment", body.get("comment"), 4000),
        reason_id=reason,
        feedback=feedback,
    )


FEEDBACK_KEYS = {"feedbackValue", "feedbackText", "allowContact", "contactEmail"}


def activity_feedback(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - FEEDBACK_KEYS)
    if unknown:
        raise BadRequest(f"Unknown parameters {unknown}; feedback takes {sorted(FEEDBACK_KEYS)}.")
    if "feedbackValue" not in body:
        raise BadRequest("'feedbackValue' is required.")
    value = body["feedbackValue"]
    if isinstance(value, bool) or not isinstance(value, int | str) or len(str(value)) > 32:
        raise BadRequest("'feedbackValue' must be a number or a short string.")
    if "allowContact" in body and not isinstance(body["allowContact"], bool):
        raise BadRequest("'allowContact' must be true or false.")
    return {
        "feedbackValue": str(value),
        "feedbackText": _opt_str("feedbackText", body.get("feedbackText"), 4000),
        "allowContact": bool(body.get("allowContact", False)),
        "contactEmail": _opt_str("contactEmail", body.get("contactEmail"), 320),
    }


# ---------------------------------------------------------------- records


def activity_view(a: Activity) -> dict[str, Any]:
    return {
        "_id": a.id,
        "tenantId": a.tenant_id,
        "timestamp": a.timestamp,
        "created": a.created,
        "appId": a.app_id,
        "appName": a.app_name,
        "actionType": a.action_type,
        "eventTypeName": a.category,
        "description": a.description,
        "source": a.source,
        "adminEvent": a.is_admin,
        "impersonated": False,
        "user": {"userName": a.user_name, "userId": a.user_id, "domain": a.user_domain},
        "device": {"clientIP": a.ip_address, "userAgent": a.user_agent, "countryCode": a.country},
        "location": {"countryCode": a.country, "city": a.city},
        "mainInfo": {
            "prettyOperationName": a.description,
            "rawOperationName": a.action_type,
            "activityResult": {"isSuccess": a.succeeded},
            "eventObjects": (
                [{"objType": a.object_type, "id": a.object_id, "name": a.object_name}] if a.object_id else []
            ),
        },
        "rawDataJson": a.details,
        "feedback": a.feedback,
    }


def alert_view(a: Alert, base_url: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "_id": a.id,
        "idValue": a.seq,
        "timestamp": a.timestamp,
        "lastSeen": a.last_seen,
        "title": a.title,
        "description": a.description,
        "isMarkdown": False,
        "isPreview": False,
        "isSystemAlert": False,
        "entities": a.entities,
        "evidence": a.evidence,
        "audits": a.activity_ids,
        "statusValue": a.status,
        "severityValue": a.severity,
        "resolutionStatusValue": a.resolution_status,
        "stories": a.stories,
        "intent": a.intent,
        "threatScore": a.threat_score,
        "policy": a.policy,
        "occurrences": a.occurrences,
        "isRead": a.status != 0,
        "comment": a.comment or "",
        "reasonId": a.reason_id,
        "handledByUser": a.handled_by,
        "resolveTime": _iso_ms(a.resolve_time),
    }
    if base_url:
        view["URL"] = f"{base_url}/api/v1/alerts/{a.id}/"
    return view


def _iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as MCAS shows ``resolveTime``: ISO 8601 with milliseconds and a Z."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def webhook_view(sub: WebhookSubscription, *, with_secret: bool = False) -> dict[str, Any]:
    view = {
        "id": sub.id,
        "url": sub.url,
        "description": sub.description,
        "eventTypes": sub.event_types,
        "enabled": sub.enabled,
        "created": iso_z(sub.created_at),
    }
    if with_secret:
        view["secret"] = sub.secret
    return view


def delivery_view(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "messageId": d.message_id,
        "eventType": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "log": d.log,
        "created": iso_z(d.created_at),
        "deliveredAt": iso_z(d.delivered_at),
    }
