"""Webhook delivery: one attempt per job run, signed with the Standard Webhooks scheme (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``). A failed
attempt is written to the delivery log and the next one queued as a durable job after a backoff, in the same
transaction; so a restart between tries loses nothing and a receiver sees the same ``webhook-id`` on every
try. The backoff schedule follows the Standard Webhooks suggestion (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h) unless ``TRUSTPLANE_WEBHOOK_RETRY_SECONDS`` (comma-separated seconds) says otherwise."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from trustplane.alerts import egress
from trustplane.alerts.models import WebhookDelivery, WebhookSubscription
from trustplane.alerts.repository import DeliveryRepository, WebhookRepository
from trustplane.core.clock import utcnow
from trustplane.core.models import Job

RETRY_ENV = "TRUSTPLANE_WEBHOOK_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000)
TIMEOUT_SECONDS = 10.0
USER_AGENT = "TrustPlane-Webhooks/1"


def retry_schedule() -> tuple[float, ...]:
    raw = os.environ.get(RETRY_ENV, "")
    if not raw.strip():
        return DEFAULT_RETRY_SECONDS
    return tuple(float(part) for part in raw.split(",") if part.strip())


def signed_headers(sub: WebhookSubscription, delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    now = utcnow()
    signature = Webhook(sub.secret).sign(delivery.message_id, now, body.decode())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


async def attempt(session: AsyncSession, tenant_id: str, delivery_id: str, job_kind: str) -> None:
    """Try one delivery once; on failure log it and queue the next try (or give up after the last)."""
    delivery = await DeliveryRepository(session, tenant_id).get(delivery_id)
    if delivery is None or delivery.status != "pending":
        return  # delivered (or given up) by an earlier run of this job
    sub = await WebhookRepository(session, tenant_id).get(delivery.subscription_id)
    if sub is None or not sub.enabled:
        delivery.status = "cancelled"
        return
    body = orjson.dumps(delivery.payload)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    url, headers = sub.url, signed_headers(sub, delivery, body)
    # The call may take up to TIMEOUT_SECONDS: hold no transaction, nor a pooled connection, meanwhile (the
    # job's lease keeps other workers off it; what it read stays loaded, the session does not expire it).
    await session.commit()
    try:
        target = await egress.resolve(url)
        headers["host"] = target.host_header
        extensions = {"sni_hostname": target.tls_name} if target.tls_name else None
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.post(target.url, content=body, headers=headers, extensions=extensions)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except egress.EgressRefused as exc:
        error = f"refused: {exc}"[:500]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    await session.refresh(delivery)
    delivery.attempts += 1
    entry = {
        "attempt": delivery.attempts,
        "at": utcnow().isoformat(),
        "statusCode": status,
        "error": error,
        "durationMs": round((time.perf_counter() - started) * 1000, 1),
    }
    delivery.log = [*(delivery.log or []), entry]
    if error is None:
        delivery.status = "delivered"
        delivery.delivered_at = utcnow()
        return
    schedule = retry_schedule()
    if delivery.attempts > len(schedule):
        delivery.status = "failed"
        return
    wait = schedule[delivery.attempts - 1]
    session.add(
        Job(
            tenant_id=tenant_id,
            kind=job_kind,
            payload={"delivery_id": delivery.id},
            run_after=utcnow() + timedelta(seconds=wait),
        )
    )
