"""The job queue, claimed from the database. A claim takes a lease (``locked_until``); the handler and the
job's completion commit in one transaction, so a worker killed mid-job leaves the job to be claimed again
when its lease runs out. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so any number of workers share
the queue; SQLite serialises writers, and the server runs the worker in-process."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.db import Database
from trustplane.core.models import Job

log = structlog.get_logger("trustplane.jobs")

JobHandler = Callable[[AsyncSession, Job], Awaitable[None]]
_HANDLERS: dict[str, JobHandler] = {}


def handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(fn: JobHandler) -> JobHandler:
        _HANDLERS[kind] = fn
        return fn

    return register


def handlers() -> dict[str, JobHandler]:
    return _HANDLERS


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2**attempts))


async def claim(db: Database, worker_id: str, *, lease_seconds: int, limit: int = 20) -> list[Job]:
    """The claimable ids (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: rows other workers hold are skipped and
    these stay locked until the claim commits), then one UPDATE … RETURNING of those still claimable. No job
    is claimed twice."""
    now = utcnow()
    claimable_now = or_(
        (Job.status == "pending") & (Job.run_after <= now),
        # A lease that ran out: its worker died or hung. Take the job over.
        (Job.status == "running") & (Job.locked_until < now),
    )
    async with db.session() as session:
        candidates = (
            select(Job.id)
            .where(Job.kind.in_(list(_HANDLERS)), claimable_now)
            .order_by(Job.run_after)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # Two statements, not ``UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL
        # may run such a subquery again per row and so claimed every claimable job at once (300 of 300 in
        # bench_alerts), leaving nothing for other workers. The UPDATE keeps the claimable condition, so on
        # SQLite (no row locks) a job another process claimed in between is not claimed twice.
        candidate_ids = list((await session.execute(candidates)).scalars())
        if not candidate_ids:
            return []
        claimed = await session.execute(
            update(Job)
            .where(Job.id.in_(candidate_ids), claimable_now)
            .values(
                status="running",
                locked_by=worker_id,
                locked_until=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1,
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
        ids = list(claimed.scalars())
        if not ids:
            return []
        result = await session.execute(select(Job).where(Job.id.in_(ids)).order_by(Job.run_after))
        return list(result.scalars())


async def run_job(db: Database, job: Job, worker_id: str) -> bool:
    fn = _HANDLERS[job.kind]
    try:
        async with db.session() as session:
            current = await session.get(Job, job.id)
            if current is None or current.status != "running" or current.locked_by != worker_id:
                return False  # taken over by another worker after our lease ran out
            await fn(session, current)
            current.status = "done"
            current.finished_at = utcnow()
            current.locked_by = None
            current.locked_until = None
        return True
    except Exception as exc:
        log.warning("job_failed", job_id=job.id, kind=job.kind, attempts=job.attempts, error=repr(exc))
        async with db.session() as session:
            current = await session.get(Job, job.id)
            if current is not None and current.locked_by == worker_id:
                current.last_error = repr(exc)[:2000]
                current.locked_by = None
                current.locked_until = None
                if current.attempts >= current.max_attempts:
                    current.status = "failed"
                    current.finished_at = utcnow()
                else:
                    current.status = "pending"
                    current.run_after = utcnow() + _backoff(current.attempts)
        return False


async def take_along(session: AsyncSession, job: Job, limit: int) -> list[Job]:
    """Up to ``limit`` pending, due jobs of ``job``'s kind and tenant, marked done in the caller's
    transaction, oldest first: a handler whose work batches well takes them along, so their effects commit
    (or roll back) with its own and one commit serves many. PostgreSQL skips jobs other workers hold."""
    now = utcnow()
    candidates = (
        select(Job.id)
        .where(
            Job.kind == job.kind,
            Job.tenant_id == job.tenant_id,
            Job.status == "pending",
            Job.run_after <= now,
            Job.id != job.id,
        )
        .order_by(Job.run_after, Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    await session.execute(
        update(Job)
        .where(Job.id.in_(ids))
        .values(status="done", finished_at=now, attempts=Job.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    taken = await session.execute(select(Job).where(Job.id.in_(ids)).order_by(Job.run_after, Job.created_at))
    return list(taken.scalars())


async def run_once(db: Database, worker_id: str, *, lease_seconds: int) -> int:
    """Claim and run one batch; returns how many jobs were claimed."""
    jobs = await claim(db, worker_id, lease_seconds=lease_seconds)
    for job in jobs:
        await run_job(db, job, worker_id)
    return len(jobs)


async def run_worker(
    db: Database,
    *,
    worker_id: str | None = None,
    lease_seconds: int = 30,
    poll_seconds: float = 0.5,
    stop: asyncio.Event | None = None,
) -> None:
    worker_id = worker_id or default_worker_id()
    stop = stop or asyncio.Event()
    log.info("worker_started", worker_id=worker_id, handlers=sorted(_HANDLERS))
    while not stop.is_set():
        try:
            claimed = await run_once(db, worker_id, lease_seconds=lease_seconds)
        except Exception as exc:  # the database may be briefly away; keep the worker alive
            log.warning("worker_claim_failed", error=repr(exc))
            claimed = 0
        if claimed == 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass
    log.info("worker_stopped", worker_id=worker_id)
