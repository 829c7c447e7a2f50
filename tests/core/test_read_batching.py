"""Reads of rows by id in read-only requests (``TenantRepository.record``) that arrive while another is in
flight are coalesced into one ``id = ANY(…)`` query (``Database.record_by_id``): fewer statements, and still
each caller's own row, nothing of another tenant, None for an unknown id, and a failed query's error for each
of its callers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.support.server import TenantHandle, TestServer
from trustplane.core.db import Database
from trustplane.directory.models import User
from trustplane.directory.repository import UserRepository


def _create_users(tenant: TenantHandle, count: int, prefix: str) -> dict[str, str]:
    """userPrincipalName by id of ``count`` new users of ``tenant``."""
    made: dict[str, str] = {}
    with tenant.client() as c:
        for i in range(count):
            upn = f"{prefix}{i}@{tenant.domain}"
            created = c.post(
                "/v1.0/users",
                json={
                    "accountEnabled": True,
                    "displayName": f"Batch Reader {i}",
                    "mailNickname": f"{prefix}{i}",
                    "userPrincipalName": upn,
                    "passwordProfile": {"password": "Correct-Horse-42"},
                    "businessPhones": [f"+1 555 01{i:02d}"],
                },
            )
            assert created.status_code == 201, created.text
            made[created.json()["id"]] = upn
    return made


def test_concurrent_reads_by_id_share_queries_and_each_gets_its_own_row(
    server: TestServer, tenant: TenantHandle
) -> None:
    other = server.tenant()
    mine = _create_users(tenant, 12, "batch")
    theirs = _create_users(other, 3, "other")
    unknown = [str(uuid.uuid4()) for _ in range(3)]
    # mine twice over (the same id asked by two requests at once), another tenant's ids, unknown ids
    asked = [*mine, *mine, *theirs, *unknown]

    async def run() -> tuple[list[Any], int]:
        db = Database(server.database_url, pool_size=3)  # no row cache: every read goes to the database
        try:

            async def read(object_id: str) -> Any:
                async with db.read_only() as session:
                    return await UserRepository(session, tenant.tenant_id).record(object_id)

            rows = await asyncio.gather(*(read(object_id) for object_id in asked))
            return rows, db._rows_by_key[User.__table__, "id"].queries
        finally:
            await db.dispose()

    rows, queries = server.run(run())
    for object_id, row in zip(asked, rows, strict=True):
        if object_id in mine:
            assert row is not None and row.id == object_id
            assert row.tenant_id == tenant.tenant_id
            assert row.user_principal_name == mine[object_id]
            assert row.business_phones == [f"+1 555 01{int(mine[object_id][5:].split('@')[0]):02d}"]
        else:
            assert row is None, object_id  # another tenant's user, or no user at all
    # 30 reads started together: the first alone, the 29 that arrived while it ran in one more query
    assert 1 <= queries <= 2, queries
    assert queries < len(asked)


def test_a_failed_batch_query_fails_every_read_in_it_and_the_next_batch_runs(
    server: TestServer, tenant: TenantHandle
) -> None:
    mine = _create_users(tenant, 2, "fail")

    async def run() -> tuple[list[Any], list[Any]]:
        db = Database(server.database_url, pool_size=3)
        real_fetch = db.fetch_records
        failing = True

        async def failing_first(stmt: Any, params: dict[str, Any]) -> list[Any]:
            if failing:
                await asyncio.sleep(0.01)
                raise ConnectionResetError("read failed")
            return await real_fetch(stmt, params)

        db.fetch_records = failing_first  # type: ignore[method-assign]
        try:

            async def read(object_id: str) -> Any:
                async with db.read_only() as session:
                    return await UserRepository(session, tenant.tenant_id).record(object_id)

            failed = await asyncio.gather(*(read(i) for i in [*mine, *mine]), return_exceptions=True)
            failing = False
            after = await asyncio.gather(*(read(i) for i in mine))
            return failed, after
        finally:
            await db.dispose()

    failed, after = server.run(run())
    assert len(failed) == 4
    assert all(isinstance(r, ConnectionResetError) for r in failed), failed
    assert [r.id for r in after] == list(mine)  # the batcher is not stuck after a failure


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_cancelled_read_does_not_cancel_the_others_in_its_batch(
    server: TestServer, tenant: TenantHandle, cancel_first: bool
) -> None:
    mine = list(_create_users(tenant, 3, f"cancel{int(cancel_first)}x"))

    async def run() -> list[Any]:
        db = Database(server.database_url, pool_size=3)
        try:

            async def read(object_id: str) -> Any:
                async with db.read_only() as session:
                    return await UserRepository(session, tenant.tenant_id).record(object_id)

            tasks = [asyncio.create_task(read(i)) for i in mine]
            await asyncio.sleep(0)
            tasks[0 if cancel_first else 1].cancel()
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await db.dispose()

    results = server.run(run())
    cancelled = 0 if cancel_first else 1
    assert isinstance(results[cancelled], asyncio.CancelledError)
    for i, (object_id, row) in enumerate(zip(mine, results, strict=True)):
        if i != cancelled:
            assert row.id == object_id


def test_concurrent_reads_by_user_principal_name_share_queries_and_match_case_insensitively(
    server: TestServer, tenant: TenantHandle
) -> None:
    other = server.tenant()
    mine = _create_users(tenant, 8, "ByUpn")
    theirs = _create_users(other, 2, "byupn")
    # mine in other cases too, another tenant's userPrincipalNames asked in this tenant, unknown ones
    asked = [
        *mine.values(),
        *(upn.upper() for upn in mine.values()),
        *theirs.values(),
        *(f"nobody{i}@{tenant.domain}" for i in range(2)),
    ]

    async def run() -> tuple[list[Any], int]:
        db = Database(server.database_url, pool_size=3)
        try:

            async def read(upn: str) -> Any:
                async with db.read_only() as session:
                    return await UserRepository(session, tenant.tenant_id).record_by_upn(upn)

            rows = await asyncio.gather(*(read(upn) for upn in asked))
            return rows, db._rows_by_key[User.__table__, "upn"].queries
        finally:
            await db.dispose()

    rows, queries = server.run(run())
    by_upn = {upn.lower(): object_id for object_id, upn in mine.items()}
    for upn, row in zip(asked, rows, strict=True):
        if upn.lower() in by_upn:
            assert row is not None and row.id == by_upn[upn.lower()], upn
            assert row.tenant_id == tenant.tenant_id and row.user_principal_name.lower() == upn.lower()
        else:
            assert row is None, upn
    assert 1 <= queries <= 2, queries
