"""The discovery job: one slice per job run, committed with its checkpoint; an unfinished upload queues its
next slice in the same transaction. A worker killed mid-slice loses only that uncommitted slice, which the
next claim of the job redoes from the last checkpoint."""

from __future__ import annotations

import os

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.jobs import handler
from trustplane.core.models import Job
from trustplane.discovery.processing import worker_count
from trustplane.discovery.service import PROCESS_JOB, PURGE_JOB, SLICE_LINES, process_next_slice, purge_log

# Lines per slice (one transaction each); smaller slices checkpoint more often.
SLICE_LINES_ENV = "TRUSTPLANE_DISCOVERY_SLICE_LINES"
# Processes that parse a large upload's ranges (discovery.processing): 0 or unset, one per CPU; 1, none (the
# job's own process parses).
WORKERS_ENV = "TRUSTPLANE_DISCOVERY_WORKERS"


@handler(PROCESS_JOB)
async def process_upload(session: AsyncSession, job: Job) -> None:
    upload_id = str(job.payload.get("upload_id", ""))
    max_lines = int(os.environ.get(SLICE_LINES_ENV, SLICE_LINES))
    workers = worker_count(int(os.environ.get(WORKERS_ENV, "0") or 0))
    finished = await process_next_slice(
        session, job.tenant_id, upload_id, max_lines=max_lines, workers=workers
    )
    if not finished:
        session.add(Job(tenant_id=job.tenant_id, kind=PROCESS_JOB, payload={"upload_id": upload_id}))


@handler(PURGE_JOB)
async def purge_upload_log(session: AsyncSession, job: Job) -> None:
    await purge_log(session, job.tenant_id, str(job.payload.get("upload_id", "")))
