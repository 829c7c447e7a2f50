"""The alerts part's jobs: ``alerts.ingest`` takes each domain event the activity log and the alert
policies read (subscribed by prefix: every part's events arrive through the outbox), and
``alerts.webhook.deliver`` makes one delivery attempt. Importing this module registers both."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.alerts import service, webhooks
from trustplane.core.events import subscribe
from trustplane.core.jobs import handler, take_along
from trustplane.core.models import Event, Job

INGEST_JOB = "alerts.ingest"
# What becomes an activity or feeds a policy: directory and credential changes (SCIM provisioning included),
# conditional access, identity protection (sign-ins, risk, admin and partner actions), cloud discovery.
EVENT_PREFIXES = ("directory.", "auth.", "access.", "protection.", "discovery.")

for _prefix in EVENT_PREFIXES:
    subscribe(_prefix, INGEST_JOB)


# Ingest jobs of the same tenant taken along into one transaction (one commit for a burst of events).
BATCH = 100


@handler(INGEST_JOB)
async def ingest_event(session: AsyncSession, job: Job) -> None:
    event = await session.get(Event, job.payload.get("event_id"))
    if event is not None:
        await service.ingest(session, event, retry=job.attempts > 1)
    if job.attempts > 1:
        return  # a retried job runs alone, so an event that keeps failing cannot hold others back
    for other in await take_along(session, job, BATCH):
        taken = await session.get(Event, other.payload.get("event_id"))
        if taken is not None:
            await service.ingest(session, taken, retry=False)


@handler(service.DELIVER_JOB)
async def deliver_webhook(session: AsyncSession, job: Job) -> None:
    await webhooks.attempt(
        session, job.tenant_id, str(job.payload.get("delivery_id", "")), service.DELIVER_JOB
    )
