"""The MCAS face of alerts and activities (``/api/v1/alerts/…``, ``/api/v1/activities/…``) as the MCAS API
documents them — list (GET or POST, with MCAS filter bodies), fetch, close benign / false positive / true
positive (by ids or filters), read / unread, activity feedback, and the legacy dismiss / dismiss_bulk /
resolve mapped to their replacements — plus TrustPlane's own alert policy and webhook endpoints. Errors
speak MCAS's ``{"detail": …}``; every route is rate limited per token. Thin: parsing, permission, service
call, rendering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.alerts import schemas, service
from trustplane.alerts.policies import POLICIES
from trustplane.auth.deps import DbSession, ReadSession, base_url, requires
from trustplane.auth.permissions import (
    READ_ACTIVITIES,
    READ_ALERTS,
    WRITE_ACTIVITIES,
    WRITE_ALERTS,
    Principal,
)
from trustplane.auth.ratelimit import RateLimited
from trustplane.core.bodies import has_nul, parse_json_object, read_body
from trustplane.core.errors import BadRequest
from trustplane.core.events import Actor

CanReadActivities = Depends(requires(*READ_ACTIVITIES))
CanWriteActivities = Depends(requires(*WRITE_ACTIVITIES))
CanReadAlerts = Depends(requires(*READ_ALERTS))
CanWriteAlerts = Depends(requires(*WRITE_ALERTS))

router = APIRouter(prefix="/api/v1", tags=["alerts and activities (MCAS API)"], dependencies=[RateLimited])

ACTIVITY_SORT = ("date", "created")
ALERT_SORT = ("date", "severity")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _actor(principal: Principal) -> Actor:
    return Actor(type=principal.kind, id=principal.id, name=principal.name)


def route(methods: list[str], path: str, **kwargs: Any) -> Callable[[Any], Any]:
    """A route answered with and without its trailing slash: MCAS's own examples use both, and a client
    that posts to the other form must not get a redirect it will not follow."""

    def register(fn: Any) -> Any:
        for method in methods:  # one operation per method: OpenAPI ids must be unique
            operation_id = f"{fn.__name__}_{method.lower()}" if len(methods) > 1 else None
            router.add_api_route(path, fn, methods=[method], operation_id=operation_id, **kwargs)
        router.add_api_route(path.rstrip("/"), fn, methods=methods, include_in_schema=False, **kwargs)
        return fn

    return register


async def _body(request: Request) -> dict[str, Any]:
    """The request's parameters: a JSON object body (whatever its declared type: curl's ``-d`` says
    form-encoded), else a form body, plus the query string; form and query values of ``filters`` are JSON."""
    raw = await read_body(request)
    body: dict[str, Any] = {}
    stripped = raw.strip()
    if stripped.startswith(b"{") or (
        stripped and request.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    ):
        body = parse_json_object(raw)
    elif stripped:
        try:
            body = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("The body is neither a JSON object nor form-encoded UTF-8.") from exc
    for key, value in request.query_params.items():
        body.setdefault(key, value)
    if isinstance(body.get("filters"), str):
        try:
            body["filters"] = orjson.loads(body["filters"])
        except orjson.JSONDecodeError as exc:
            raise BadRequest("'filters' is not valid JSON.") from exc
    if has_nul(body):
        raise BadRequest("The request contains a NUL character, which is not allowed.")
    return body


def _page(page: service.Page, render: Callable[[Any], dict[str, Any]]) -> Response:
    return _json(
        {
            "data": [render(item) for item in page.items],
            "hasNext": page.has_next,
            "max": page.limit,
            "total": page.total,
            "moreThanTotal": page.more_than_total,
        }
    )


# ---------------------------------------------------------------- activities


@route(["GET", "POST"], "/activities/", summary="List activities (MCAS filters, skip, limit ≤ 100)")
async def list_activities(
    request: Request, principal: Principal = CanReadActivities, session: AsyncSession = ReadSession
) -> Response:
    parsed = schemas.list_request(await _body(request), ACTIVITY_SORT)
    page = await service.list_activities(session, principal.tenant_id, parsed)
    return _page(page, schemas.activity_view)


@route(["GET"], "/activities/{pk}/", summary="Fetch an activity")
async def get_activity(
    pk: str, principal: Principal = CanReadActivities, session: AsyncSession = ReadSession
) -> Response:
    return _json(schemas.activity_view(await service.get_activity(session, principal.tenant_id, pk)))


@route(["POST"], "/activities/{pk}/feedback/", summary="Feedback on an activity")
async def activity_feedback(
    pk: str, request: Request, principal: Principal = CanWriteActivities, session: AsyncSession = DbSession
) -> Response:
    feedback = schemas.activity_feedback(await _body(request))
    activity = await service.activity_feedback(session, principal.tenant_id, _actor(principal), pk, feedback)
    return _json({"total": 1, "hasNext": False, "data": [schemas.activity_view(activity)]})


# ---------------------------------------------------------------- alerts


@route(["GET", "POST"], "/alerts/", summary="List alerts (MCAS filters, skip, limit ≤ 100)")
async def list_alerts(
    request: Request, principal: Principal = CanReadAlerts, session: AsyncSession = ReadSession
) -> Response:
    parsed = schemas.list_request(await _body(request), ALERT_SORT)
    page = await service.list_alerts(session, principal.tenant_id, parsed)
    base = base_url(request)
    return _page(page, lambda a: schemas.alert_view(a, base))


async def _close(
    request: Request, principal: Principal, session: AsyncSession, action: str, pk: str | None
) -> Response:
    body = await _body(request)
    closed = await service.close_alerts(
        session, principal.tenant_id, _actor(principal), action, schemas.close_request(body, pk)
    )
    answer: dict[str, Any] = {closed.key: closed.count}
    if closed.not_found:
        answer["alertsNotFound"] = closed.not_found
    return _json(answer)


def _closer(action: str, summary: str) -> None:
    async def close(
        request: Request, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
    ) -> Response:
        return await _close(request, principal, session, action, None)

    close.__name__ = action
    route(["POST"], f"/alerts/{action}/", summary=summary)(close)


_closer("close_benign", "Close alerts as benign (by ids or filters)")
_closer("close_false_positive", "Close alerts as false positive (by ids or filters)")
_closer("close_true_positive", "Close alerts as true positive (by ids or filters)")
_closer("dismiss_bulk", "Legacy: bulk dismiss, mapped to close as false positive")
_closer("resolve", "Legacy: bulk resolve, mapped to close as true positive")


@route(
    ["POST"], "/alerts/{pk}/dismiss/", summary="Legacy: dismiss one alert, mapped to close as false positive"
)
async def dismiss(
    pk: str, request: Request, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
) -> Response:
    return await _close(request, principal, session, "dismiss", pk)


@route(["GET"], "/alerts/{pk}/", summary="Fetch an alert")
async def get_alert(
    pk: str, request: Request, principal: Principal = CanReadAlerts, session: AsyncSession = ReadSession
) -> Response:
    alert = await service.get_alert(session, principal.tenant_id, pk)
    return _json(schemas.alert_view(alert, base_url(request)))


@route(["POST"], "/alerts/{pk}/read/", summary="Mark an alert as read")
async def mark_read(
    pk: str, request: Request, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
) -> Response:
    alert = await service.mark_read(session, principal.tenant_id, pk, True)
    return _json(schemas.alert_view(alert, base_url(request)))


@route(["POST"], "/alerts/{pk}/unread/", summary="Mark an alert as unread")
async def mark_unread(
    pk: str, request: Request, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
) -> Response:
    alert = await service.mark_read(session, principal.tenant_id, pk, False)
    return _json(schemas.alert_view(alert, base_url(request)))


# ---------------------------------------------------------------- alert policies (TrustPlane's own)


def _policy_view(key: str, enabled: bool, thresholds: dict[str, Any]) -> dict[str, Any]:
    policy = POLICIES[key]
    return {
        "id": key,
        "name": policy.name,
        "description": policy.description,
        "enabled": enabled,
        "thresholds": thresholds,
    }


@route(["GET"], "/alert_policies/", summary="The alert policies with this tenant's settings")
async def list_policies(
    principal: Principal = CanReadAlerts, session: AsyncSession = ReadSession
) -> Response:
    settings = await service.policy_settings(session, principal.tenant_id)
    return _json({"data": [_policy_view(k, *v) for k, v in settings.items()]})


@route(["PATCH"], "/alert_policies/{key}/", summary="Enable or disable a policy, or set its thresholds")
async def patch_policy(
    key: str, request: Request, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
) -> Response:
    body = await _body(request)
    unknown = sorted(set(body) - {"enabled", "thresholds"})
    if unknown:
        raise BadRequest(f"Unknown properties {unknown}; a policy takes enabled, thresholds.")
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise BadRequest("'enabled' must be true or false.")
    thresholds = body.get("thresholds")
    if thresholds is not None and not isinstance(thresholds, dict):
        raise BadRequest("'thresholds' must be an object.")
    enabled, effective = await service.set_policy(
        session, principal.tenant_id, key, enabled=enabled, thresholds=thresholds
    )
    return _json(_policy_view(key, enabled, effective))


# ---------------------------------------------------------------- webhooks (TrustPlane's own)


@route(["POST"], "/webhooks/", summary="Subscribe a URL to alert events (the signing secret is shown once)")
async def create_webhook(
    request: Request, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
) -> Response:
    body = await _body(request)
    unknown = sorted(set(body) - {"url", "eventTypes", "description"})
    if unknown:
        raise BadRequest(f"Unknown properties {unknown}; a webhook takes url, eventTypes, description.")
    sub = await service.create_webhook(
        session,
        principal.tenant_id,
        url=body.get("url"),
        event_types=body.get("eventTypes"),
        description=body.get("description"),
    )
    return _json(schemas.webhook_view(sub, with_secret=True), status=201)


@route(["GET"], "/webhooks/", summary="The tenant's webhook subscriptions")
async def list_webhooks(
    principal: Principal = CanReadAlerts, session: AsyncSession = ReadSession
) -> Response:
    subs = await service.list_webhooks(session, principal.tenant_id)
    return _json({"data": [schemas.webhook_view(s) for s in subs]})


@route(["DELETE"], "/webhooks/{webhook_id}/", summary="Delete a webhook subscription")
async def delete_webhook(
    webhook_id: str, principal: Principal = CanWriteAlerts, session: AsyncSession = DbSession
) -> Response:
    await service.delete_webhook(session, principal.tenant_id, webhook_id)
    return Response(status_code=204)


@route(["GET"], "/webhooks/{webhook_id}/deliveries/", summary="A webhook's delivery log (latest 100)")
async def webhook_deliveries(
    webhook_id: str, principal: Principal = CanReadAlerts, session: AsyncSession = ReadSession
) -> Response:
    found = await service.deliveries(session, principal.tenant_id, webhook_id)
    return _json({"data": [schemas.delivery_view(d) for d in found]})
