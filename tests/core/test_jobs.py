"""Durable jobs: a worker killed while a job runs loses nothing — the job is taken over when its lease runs
out and completes once; workers sharing the queue never run a job twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.server import create_pg_database, drop_pg_database
from trustplane.auth.keys import KeyStore
from trustplane.bootstrap import ensure_ready
from trustplane.core.db import Database
from trustplane.core.events import SYSTEM
from trustplane.directory import service
from trustplane.directory.repository import TenantLookup

SLOW_WORKER = """
import asyncio, sys
import trustplane.directory.audit  # registers the real handler first
from trustplane.core import jobs

real = jobs.handlers()["audit.record"]

async def slow(session, job):
    await real(session, job)      # the effect is written, but not yet committed ...
    await session.flush()
    print("working", job.id, flush=True)
    await asyncio.sleep(3600)     # ... when the process is killed here

jobs.handler("audit.record")(slow)
from trustplane.cli import app
app(["worker", "--worker-id", "doomed"])
"""


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgresql":
        url, name = create_pg_database()
        yield url
        drop_pg_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _make_users(url: str, n: int) -> list[str]:
    db = Database(url)
    try:
        await ensure_ready(db, KeyStore(3600))
        async with db.session() as session:
            tenant = await TenantLookup(session).default()
            assert tenant is not None
            ids = []
            for i in range(n):
                user = await service.create_user(
                    session,
                    tenant.id,
                    SYSTEM,
                    {
                        "user_principal_name": f"u{i}@x.test",
                        "display_name": f"U {i}",
                        "mail_nickname": f"u{i}",
                    },
                    password=None,
                )
                ids.append(user.id)
        return ids
    finally:
        await db.dispose()


async def _query(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    db = Database(url)
    try:
        async with db.read_session() as session:
            return [tuple(r) for r in (await session.execute(sa.text(sql), params)).all()]
    finally:
        await db.dispose()


def _env(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TRUSTPLANE_DATABASE_URL": url,
            "TRUSTPLANE_JOB_LEASE_SECONDS": "2",
            "TRUSTPLANE_JOB_POLL_SECONDS": "0.1",
            "TRUSTPLANE_LOG_LEVEL": "warning",
            **extra,
        }
    )
    return env


def _wait(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _user_created_jobs(url: str, user_id: str) -> list[tuple[object, ...]]:
    return _run(
        _query(
            url,
            "SELECT j.status, j.attempts, j.locked_by, e.id FROM jobs j JOIN events e ON e.id = "
            + (
                "j.payload->>'event_id'"
                if url.startswith("postgresql")
                else "json_extract(j.payload, '$.event_id')"
            )
            + " WHERE e.subject_id = :uid AND e.type = 'directory.user.created' AND j.kind = 'audit.record'",
            uid=user_id,
        )
    )


def test_killed_worker_loses_no_event_and_the_job_completes_once(database_url: str) -> None:
    (user_id,) = _run(_make_users(database_url, 1))
    doomed = subprocess.Popen(
        [sys.executable, "-c", SLOW_WORKER], env=_env(database_url), stdout=subprocess.PIPE, text=True
    )
    try:
        assert doomed.stdout is not None
        line = doomed.stdout.readline()
        assert line.startswith("working"), line
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    [(status, attempts, locked_by, event_id)] = _user_created_jobs(database_url, user_id)
    assert (status, attempts, locked_by) == ("running", 1, "doomed")
    # The killed worker's transaction died with it: no audit entry was committed.
    assert _run(_query(database_url, "SELECT count(*) FROM audit_log WHERE event_id = :e", e=event_id)) == [
        (0,)
    ]

    survivor = subprocess.Popen(
        [sys.executable, "-m", "trustplane.cli", "worker", "--worker-id", "survivor"],
        env=_env(database_url),
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _user_created_jobs(database_url, user_id)[0][0] == "done")
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=20)
    [(status, attempts, _locked, _event)] = _user_created_jobs(database_url, user_id)
    assert (status, attempts) == ("done", 2)
    assert _run(_query(database_url, "SELECT count(*) FROM audit_log WHERE event_id = :e", e=event_id)) == [
        (1,)
    ]


def test_concurrent_workers_run_each_job_exactly_once(database_url: str) -> None:
    user_ids = _run(_make_users(database_url, 60))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "trustplane.cli", "worker", "--worker-id", f"w{i}"],
            env=_env(database_url, TRUSTPLANE_JOB_LEASE_SECONDS="60"),
            stdout=subprocess.DEVNULL,
        )
        for i in range(3)
    ]
    try:
        _wait(
            lambda: _run(_query(database_url, "SELECT count(*) FROM jobs WHERE status <> 'done'")) == [(0,)],
            60,
        )
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=20)
    # Every job ran once: a single attempt each, one audit entry per event.
    assert _run(_query(database_url, "SELECT max(attempts), min(attempts) FROM jobs")) == [(1, 1)]
    events = _run(_query(database_url, "SELECT count(*) FROM events"))[0][0]
    assert _run(_query(database_url, "SELECT count(*), count(DISTINCT event_id) FROM audit_log")) == [
        (events, events)
    ]
    assert len(user_ids) == 60
