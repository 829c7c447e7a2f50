"""Alerts and activities rules, once. ``ingest`` takes one domain event: it writes the event's activities,
runs every enabled alert policy that handles the event, raises an alert per finding or updates the open one
for the same policy and subject (one open alert per policy and subject), and queues a signed webhook
delivery per subscription — all in the caller's transaction, so an event is ingested fully or not at all.
Listing, fetching, closing (benign / false positive / true positive), read / unread and feedback serve the
MCAS face. Never commits; no HTTP types."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.alerts import egress, schemas
from trustplane.alerts.activities import ActivityDraft, drafts_for, epoch_ms
from trustplane.alerts.filters import compile_filters
from trustplane.alerts.models import (
    Activity,
    Alert,
    AlertBaseline,
    AlertPolicySetting,
    WebhookDelivery,
    WebhookSubscription,
)
from trustplane.alerts.policies import POLICIES, AlertPolicy
from trustplane.alerts.policies.base import EventView, Finding, PolicyContext
from trustplane.alerts.repository import (
    ActivityRepository,
    AlertRepository,
    BaselineRepository,
    DeliveryRepository,
    PolicySettingRepository,
    WebhookRepository,
)
from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound
from trustplane.core.events import Actor
from trustplane.core.ids import is_uuid, new_id
from trustplane.core.models import Event, Job

DELIVER_JOB = "alerts.webhook.deliver"
# Lists count matches up to this many; beyond it ``total`` is the cap and ``moreThanTotal`` is true.
COUNT_CAP = 10_000
# A bulk close by filter touches at most this many alerts per request.
MAX_BULK = 10_000
WEBHOOK_EVENT_TYPES = ("alert.created", "alert.updated", "alert.closed")
MAX_ALERT_ACTIVITIES = 50

# Close actions: (resolutionStatus, allowed reasonIds, answer key). Legacy actions map to the modern ones.
OPEN, FALSE_POSITIVE, BENIGN, TRUE_POSITIVE = 0, 3, 4, 5
CLOSE_ACTIONS: dict[str, tuple[int, frozenset[int] | None, str]] = {
    "close_benign": (BENIGN, frozenset({2, 4, 5, 6}), "closed_benign"),
    "close_false_positive": (FALSE_POSITIVE, frozenset({0, 1, 3, 4}), "closed_false_positive"),
    "close_true_positive": (TRUE_POSITIVE, None, "closed_true_positive"),
}
LEGACY_ACTIONS = {
    "dismiss": "close_false_positive",
    "dismiss_bulk": "close_false_positive",
    "resolve": "close_true_positive",
}


def now_ms() -> int:
    return epoch_ms(utcnow())


# ---------------------------------------------------------------- ingest (the event stream)


class _Context(PolicyContext):
    def __init__(self, session: AsyncSession, tenant_id: str, at_ms: int) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.now_ms = at_ms
        self._apps: dict[str, tuple[str, int | None, str | None]] | None = None

    async def observe(self, policy: str, values: dict[str, float]) -> dict[str, tuple[int, float, float]]:
        repo = BaselineRepository(self.session, self.tenant_id)
        rows = await repo.of_many(policy, list(values))
        before: dict[str, tuple[int, float, float]] = {}
        at = utcnow()
        for subject, value in values.items():
            row = rows.get(subject)
            if row is None:
                row = repo.add(AlertBaseline(policy=policy, subject=subject, count=0, mean=0.0, m2=0.0))
            before[subject] = (
                row.count,
                row.mean,
                (row.m2 / (row.count - 1)) ** 0.5 if row.count > 1 else 0.0,
            )
            count = row.count + 1
            delta = value - row.mean
            mean = row.mean + delta / count
            row.count, row.mean, row.m2 = count, mean, row.m2 + delta * (value - mean)
            row.updated_at = at
        return before

    async def count_recent(self, action_types: list[str], user_id: str, since_ms: int) -> int:
        return await ActivityRepository(self.session, self.tenant_id).count_recent(
            action_types, user_id, since_ms
        )

    async def user_principal_name(self, user_id: str) -> str | None:
        from trustplane.directory.repository import UserRepository

        user = await UserRepository(self.session, self.tenant_id).get(user_id) if is_uuid(user_id) else None
        return user.user_principal_name if user is not None else None

    async def app_risk(self, app_id: str) -> tuple[str, int | None, str | None]:
        if self._apps is None:
            from trustplane.discovery import governance  # the discovery part owns scores and status

            self._apps = {
                key: (g.app.name, g.risk.total, g.status)
                for key, g in (await governance.governed_apps(self.session, self.tenant_id)).items()
            }
        return self._apps.get(app_id, (app_id, None, None))


@dataclass
class Ingested:
    activities: int
    raised: list[Alert]
    updated: list[Alert]


def _view(event: Event) -> EventView:
    return EventView(
        id=event.id,
        type=event.type,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        actor=dict(event.actor or {}),
        data=dict(event.data or {}),
        created_ms=epoch_ms(event.created_at),
    )


async def _write_activities(
    session: AsyncSession, tenant_id: str, event: EventView, drafts: list[ActivityDraft], *, retry: bool
) -> list[Activity]:
    repo = ActivityRepository(session, tenant_id)
    # Only a job run again can meet its own earlier writes (each event has one ingest job); a first run
    # skips the lookup, and the unique (tenant, event, part) index still refuses a duplicate.
    existing = await repo.existing_parts(event.id) if drafts and retry else set()
    created = now_ms()
    written = []
    for d in drafts:
        if d.part in existing:
            continue  # written by an earlier attempt at this event
        written.append(
            repo.add(
                Activity(
                    id=new_id(),
                    event_id=event.id,
                    event_part=d.part,
                    timestamp=d.timestamp,
                    created=created,
                    action_type=d.action_type[:64],
                    category=d.category[:32],
                    description=d.description[:512],
                    source=d.source,
                    is_admin=d.is_admin,
                    succeeded=d.succeeded,
                    user_name=d.user_name,
                    user_id=d.user_id,
                    user_domain=d.user_domain,
                    ip_address=d.ip_address,
                    country=d.country,
                    city=d.city,
                    app_id=d.app_id,
                    app_name=d.app_name,
                    user_agent=d.user_agent,
                    object_type=d.object_type,
                    object_id=d.object_id,
                    object_name=d.object_name,
                    details=d.details,
                )
            )
        )
    if written:
        await session.flush()
    return written


def _merge_entities(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {(e.get("type"), str(e.get("id"))) for e in old}
    merged = list(old)
    for e in new:
        key = (e.get("type"), str(e.get("id")))
        if key not in seen and len(merged) < 50:
            seen.add(key)
            merged.append(e)
    return merged


async def _raise(
    session: AsyncSession,
    tenant_id: str,
    policy: AlertPolicy,
    finding: Finding,
    activity_ids: list[str],
    at_ms: int,
) -> tuple[Alert, bool]:
    """Raise the finding's alert, or update the open one for this policy and subject. True if raised."""
    repo = AlertRepository(session, tenant_id)
    current = await repo.open_for(policy.key, finding.subject)
    if current is None:
        alert = repo.add(
            Alert(
                id=new_id(),
                policy=policy.key,
                subject=finding.subject[:400],
                title=finding.title[:256],
                description=finding.description,
                severity=finding.severity,
                status=0,
                resolution_status=OPEN,
                stories=finding.stories,
                intent=finding.intent,
                entities=[
                    *finding.entities,
                    {
                        "id": policy.key,
                        "label": policy.name,
                        "policyType": "ALERT_POLICY",
                        "type": "policyRule",
                    },
                ],
                evidence=finding.evidence,
                activity_ids=activity_ids[:MAX_ALERT_ACTIVITIES],
                entity_user=(finding.entity_user or None) and finding.entity_user[:320],
                entity_ip=finding.entity_ip,
                entity_app=finding.entity_app,
                threat_score=finding.threat_score,
                occurrences=1,
                timestamp=at_ms,
                last_seen=at_ms,
            )
        )
        await session.flush()
        return alert, True
    current.occurrences += 1
    current.last_seen = max(current.last_seen, at_ms)
    current.description = finding.description
    current.severity = max(current.severity, finding.severity)
    current.threat_score = max(current.threat_score, finding.threat_score)
    current.entities = _merge_entities(list(current.entities or []), finding.entities)
    current.evidence = list(dict.fromkeys([*(current.evidence or []), *finding.evidence]))[:50]
    current.activity_ids = list(dict.fromkeys([*(current.activity_ids or []), *activity_ids]))[
        -MAX_ALERT_ACTIVITIES:
    ]
    current.status = 0  # new evidence: unread again
    return current, False


async def policy_settings(session: AsyncSession, tenant_id: str) -> dict[str, tuple[bool, dict[str, Any]]]:
    """Every policy's (enabled, effective thresholds) for the tenant."""
    rows = await PolicySettingRepository(session, tenant_id).all()
    result = {}
    for key, policy in POLICIES.items():
        row = rows.get(key)
        given = dict(row.thresholds or {}) if row is not None else {}
        result[key] = (row.enabled if row is not None else True, policy.thresholds(given))
    return result


async def ingest(session: AsyncSession, event: Event, *, retry: bool = True) -> Ingested:
    """One event through the activity log and the alert policies (idempotent per event; ``retry=False``
    when the caller knows this is the event's first ingestion)."""
    tenant_id = event.tenant_id
    view = _view(event)
    drafts = drafts_for(view.type, view.subject_type, view.subject_id, view.actor, view.data, view.created_ms)
    written = await _write_activities(session, tenant_id, view, drafts, retry=retry)
    if drafts and not written:
        return Ingested(0, [], [])  # an earlier attempt ingested this event and committed
    handling = [p for p in POLICIES.values() if p.handles(view.type)]
    raised: list[Alert] = []
    updated: list[Alert] = []
    if handling:
        settings = await policy_settings(session, tenant_id)
        ctx = _Context(session, tenant_id, view.created_ms)
        activity_ids = [a.id for a in written]
        for policy in handling:
            enabled, thresholds = settings[policy.key]
            if not enabled:
                continue
            for finding in await policy.evaluate(ctx, thresholds, view, drafts):
                alert, new = await _raise(session, tenant_id, policy, finding, activity_ids, view.created_ms)
                (raised if new else updated).append(alert)
    for alert in raised:
        await _notify(session, tenant_id, "alert.created", alert)
    for alert in updated:
        if alert not in raised:
            await _notify(session, tenant_id, "alert.updated", alert)
    return Ingested(len(written), raised, updated)


# ---------------------------------------------------------------- listing (the MCAS face)


@dataclass
class Page:
    items: list[Any]
    has_next: bool
    total: int
    more_than_total: bool
    limit: int


async def _page(
    repo: Any, conditions: list[ColumnElement[bool]], order: list[Any], request: schemas.ListRequest
) -> Page:
    rows = await repo.page(conditions, order, request.skip, request.limit + 1)
    total = await repo.count_capped(conditions, COUNT_CAP)
    return Page(
        items=rows[: request.limit],
        has_next=len(rows) > request.limit,
        total=min(total, COUNT_CAP),
        more_than_total=total > COUNT_CAP,
        limit=request.limit,
    )


async def list_activities(session: AsyncSession, tenant_id: str, request: schemas.ListRequest) -> Page:
    conditions = compile_filters(request.filters, schemas.ACTIVITY_FIELDS, now_ms=now_ms())
    return await _page(
        ActivityRepository(session, tenant_id), conditions, schemas.activity_order(request), request
    )


async def get_activity(session: AsyncSession, tenant_id: str, activity_id: str) -> Activity:
    activity = await ActivityRepository(session, tenant_id).get(activity_id)
    if activity is None:
        raise NotFound(f"No activity '{activity_id}'.")
    return activity


async def activity_feedback(
    session: AsyncSession, tenant_id: str, actor: Actor, activity_id: str, feedback: dict[str, Any]
) -> Activity:
    activity = await get_activity(session, tenant_id, activity_id)
    activity.feedback = {**feedback, "by": actor.name or actor.id, "at": now_ms()}
    return activity


async def list_alerts(session: AsyncSession, tenant_id: str, request: schemas.ListRequest) -> Page:
    conditions = compile_filters(request.filters, schemas.ALERT_FIELDS, now_ms=now_ms())
    return await _page(AlertRepository(session, tenant_id), conditions, schemas.alert_order(request), request)


async def get_alert(session: AsyncSession, tenant_id: str, alert_id: str) -> Alert:
    alert = await AlertRepository(session, tenant_id).get(alert_id)
    if alert is None:
        raise NotFound(f"No alert '{alert_id}'.")
    return alert


async def mark_read(session: AsyncSession, tenant_id: str, alert_id: str, read: bool) -> Alert:
    alert = await get_alert(session, tenant_id, alert_id)
    if alert.status != 2:  # archived stays archived
        alert.status = 1 if read else 0
    return alert


@dataclass
class Closed:
    count: int
    not_found: list[str]
    key: str


async def close_alerts(
    session: AsyncSession, tenant_id: str, actor: Actor, action: str, request: schemas.CloseRequest
) -> Closed:
    """Close the alerts named by id (``filters: {"id": {"eq": [...]}}``, or one ``pk``) or matching the
    filters, with MCAS's resolution for ``action``; ids not found are listed, nothing else changes."""
    resolution, reasons, key = CLOSE_ACTIONS[LEGACY_ACTIONS.get(action, action)]
    if request.reason_id is not None and reasons is not None and request.reason_id not in reasons:
        raise BadRequest(f"reasonId for {action} is one of {sorted(reasons)}; got {request.reason_id}.")
    if request.reason_id is not None and reasons is None:
        raise BadRequest(f"{action} takes no reasonId.")
    repo = AlertRepository(session, tenant_id)
    not_found: list[str] = []
    if request.ids is not None:
        alerts = await repo.by_ids(request.ids)
        found = {a.id for a in alerts}
        not_found = [i for i in request.ids if i not in found]
        rest = compile_filters(request.other_filters, schemas.ALERT_FIELDS, now_ms=now_ms())
        if rest:
            alerts = await repo.matching([schemas.ALERT_ID.in_(list(found)), *rest], MAX_BULK)
    else:
        conditions = compile_filters(request.other_filters, schemas.ALERT_FIELDS, now_ms=now_ms())
        if not conditions:
            raise BadRequest("Name the alerts to close: 'filters' with at least one filter, e.g. by 'id'.")
        alerts = await repo.matching(conditions, MAX_BULK + 1)
        if len(alerts) > MAX_BULK:
            raise BadRequest(f"The filters match more than {MAX_BULK} alerts; narrow them.")
    at = now_ms()
    for alert in alerts:
        alert.resolution_status = resolution
        alert.resolve_time = at
        alert.comment = request.comment
        alert.reason_id = request.reason_id
        alert.handled_by = (actor.name or actor.id)[:320]
        alert.feedback = request.feedback
        if alert.status == 0:
            alert.status = 1
    await session.flush()
    for alert in alerts:
        await _notify(session, tenant_id, "alert.closed", alert)
    return Closed(len(alerts), not_found, key)


# ---------------------------------------------------------------- policies


def _policy(key: str) -> AlertPolicy:
    policy = POLICIES.get(key)
    if policy is None:
        raise NotFound(f"No alert policy '{key}'. Policies: {', '.join(POLICIES)}.")
    return policy


async def set_policy(
    session: AsyncSession,
    tenant_id: str,
    key: str,
    *,
    enabled: bool | None,
    thresholds: dict[str, Any] | None,
) -> tuple[bool, dict[str, Any]]:
    policy = _policy(key)
    repo = PolicySettingRepository(session, tenant_id)
    row = await repo.of(key)
    given = dict(row.thresholds or {}) if row is not None else {}
    if thresholds is not None:
        given.update(thresholds)
    effective = policy.thresholds(given)  # validates before anything is written
    if row is None:
        row = repo.add(AlertPolicySetting(policy=key, enabled=True, thresholds={}))
    if enabled is not None:
        row.enabled = enabled
    row.thresholds = given
    row.modified_at = utcnow()
    return row.enabled, effective


# ---------------------------------------------------------------- webhooks


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or len(url) > 2048:
        raise BadRequest("'url' must be an http(s) URL of at most 2048 characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("'url' must be an absolute http or https URL.")
    if parts.username is not None or parts.password is not None:
        raise BadRequest("'url' must not carry credentials; the signature authenticates TrustPlane.")
    try:
        egress.check_literal(url)
    except egress.EgressRefused as exc:
        raise BadRequest(f"'url': {exc}") from exc
    return url


async def create_webhook(
    session: AsyncSession, tenant_id: str, *, url: Any, event_types: Any, description: Any
) -> WebhookSubscription:
    url = _check_url(url)
    types = event_types if event_types is not None else []
    if not isinstance(types, list) or any(t not in WEBHOOK_EVENT_TYPES for t in types):
        raise BadRequest(f"'eventTypes' is a list of {list(WEBHOOK_EVENT_TYPES)} (empty: all).")
    if description is not None and (not isinstance(description, str) or len(description) > 256):
        raise BadRequest("'description' is a string of at most 256 characters.")
    sub = WebhookRepository(session, tenant_id).add(
        WebhookSubscription(
            id=new_id(), url=url, event_types=types, description=description, secret=new_webhook_secret()
        )
    )
    await session.flush()
    return sub


async def list_webhooks(session: AsyncSession, tenant_id: str) -> list[WebhookSubscription]:
    return await WebhookRepository(session, tenant_id).all()


async def get_webhook(session: AsyncSession, tenant_id: str, webhook_id: str) -> WebhookSubscription:
    sub = await WebhookRepository(session, tenant_id).get(webhook_id)
    if sub is None:
        raise NotFound(f"No webhook '{webhook_id}'.")
    return sub


async def delete_webhook(session: AsyncSession, tenant_id: str, webhook_id: str) -> None:
    sub = await get_webhook(session, tenant_id, webhook_id)
    await WebhookRepository(session, tenant_id).remove(sub)


async def deliveries(
    session: AsyncSession, tenant_id: str, webhook_id: str, limit: int = 100
) -> list[WebhookDelivery]:
    await get_webhook(session, tenant_id, webhook_id)
    return await DeliveryRepository(session, tenant_id).for_subscription(webhook_id, limit)


async def _notify(session: AsyncSession, tenant_id: str, event_type: str, alert: Alert) -> None:
    """A durable delivery (and its job) per enabled subscription that wants ``event_type``."""
    subs = [
        s
        for s in await WebhookRepository(session, tenant_id).enabled()
        if not s.event_types or event_type in s.event_types
    ]
    if not subs:
        return
    payload = {"type": event_type, "timestamp": utcnow().isoformat(), "data": schemas.alert_view(alert)}
    repo = DeliveryRepository(session, tenant_id)
    for sub in subs:
        delivery = repo.add(
            WebhookDelivery(
                id=new_id(),
                subscription_id=sub.id,
                message_id="msg_" + new_id().replace("-", ""),
                event_type=event_type,
                payload=payload,
                status="pending",
                attempts=0,
                log=[],
            )
        )
        session.add(Job(tenant_id=tenant_id, kind=DELIVER_JOB, payload={"delivery_id": delivery.id}))
