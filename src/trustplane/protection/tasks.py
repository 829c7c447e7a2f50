"""Identity protection's background jobs: the offline detections of one sign-in (queued by ``assess`` in
the sign-in's own transaction) and the tenant's upkeep (low user risk ageing out; ``assess`` queues it
when it has not run for ``service.UPKEEP_INTERVAL``). Both are safe to run again."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.jobs import handler
from trustplane.core.models import Job
from trustplane.protection import service


@handler(service.OFFLINE_JOB)
async def run_offline_detections(session: AsyncSession, job: Job) -> None:
    await service.detect_offline(session, job.tenant_id, str(job.payload["sign_in_id"]))


@handler(service.UPKEEP_JOB)
async def run_upkeep(session: AsyncSession, job: Job) -> None:
    await service.age_out(session, job.tenant_id, utcnow())
