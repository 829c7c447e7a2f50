"""Driver-level reads (``Database.fetch_records``) on PostgreSQL run on a fixed-size asyncpg pool: bursts of
concurrent reads wait for a connection instead of opening and closing overflow ones, and JSON columns come
back decoded as through SQLAlchemy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select

from tests.support.server import TenantHandle, TestServer
from trustplane.core.db import Database
from trustplane.directory.models import User

READS = select(User.__table__).where(User.__table__.c.tenant_id == bindparam("_tenant_id"))
BACKEND = select(func.pg_backend_pid().label("pid"))


def test_bursts_of_reads_reuse_a_fixed_set_of_connections(server: TestServer, tenant: TenantHandle) -> None:
    if server.backend != "postgresql":
        pytest.skip("driver-level reads are PostgreSQL's (SQLite reads through SQLAlchemy)")
    with tenant.client() as c:
        created = c.post(
            "/v1.0/users",
            json={
                "accountEnabled": True,
                "displayName": "Pooled Reader",
                "mailNickname": "pooledreader",
                "userPrincipalName": f"pooled.reader@{tenant.domain}",
                "passwordProfile": {"password": "Correct-Horse-42"},
                "businessPhones": ["+1 555 0199"],
            },
        )
        assert created.status_code == 201, created.text

    async def run() -> tuple[list[Any], set[int], set[int]]:
        db = Database(server.database_url, pool_size=3)
        try:

            async def read() -> Any:
                return await db.fetch_record(READS, {"_tenant_id": tenant.tenant_id})

            async def burst() -> set[int]:
                pids = await asyncio.gather(*(db.fetch_record(BACKEND, {}) for _ in range(40)))
                return {row[0] for row in pids}

            rows = await asyncio.gather(*(read() for _ in range(10)))
            return rows, await burst(), await burst()
        finally:
            await db.dispose()

    rows, after_first, after_second = server.run(run())
    assert all(r is not None and r.business_phones == ["+1 555 0199"] for r in rows)  # JSON decoded
    assert 1 <= len(after_first) <= 3  # 40 reads at once, at most the pool's 3 connections
    assert after_second <= after_first  # the same connections again: none closed and reopened
