"""``core.db.driver_rows`` runs a SELECT straight on the driver of the session's connection: the rows equal
what SQLAlchemy's own execution gives (literals of the statement, text, integers, times, NULLs, a union),
and the read sees the session's uncommitted writes (it runs in the session's transaction)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, case, literal, null, select, union_all

from tests.support.server import TestServer
from trustplane.core.db import driver_rows
from trustplane.protection.models import FeatureCount

AT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def test_driver_rows_equal_sqlalchemys_rows_and_see_the_transactions_writes(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    subject = "driver-rows-subject"
    first = case(
        (and_(FeatureCount.feature == "ip", FeatureCount.value == "#total"), FeatureCount.first_seen_at),
        else_=null(),
    )
    stmt = union_all(
        select(
            FeatureCount.subject, FeatureCount.feature, FeatureCount.value, FeatureCount.count, first
        ).where(FeatureCount.tenant_id == bindparam("tenant"), FeatureCount.subject == bindparam("subject")),
        select(
            literal("!marker", String(36)),
            literal("none"),
            literal("x"),
            literal(7, Integer),
            FeatureCount.first_seen_at,
        ).where(
            FeatureCount.tenant_id == bindparam("tenant"),
            FeatureCount.subject == bindparam("subject"),
            FeatureCount.feature == "ip",
            FeatureCount.value == "#total",
        ),
    )
    params = {"tenant": tenant_id, "subject": subject}

    async def run() -> tuple[list[Any], list[Any]]:
        async with server.db.session() as session:
            session.add_all(
                [
                    FeatureCount(
                        tenant_id=tenant_id, subject=subject, feature="ip", value="#total", count=3,
                        first_seen_at=AT,
                    ),
                    FeatureCount(
                        tenant_id=tenant_id, subject=subject, feature="ip", value="=192.0.2.1", count=2,
                        first_seen_at=AT,
                    ),
                ]
            )  # fmt: skip
            await session.flush()  # not committed: only the session's own transaction sees these rows
            ours = await driver_rows(session, stmt, params)
            theirs = [tuple(row) for row in (await session.execute(stmt, params)).all()]
            await session.rollback()
            return ours, theirs

    ours, theirs = server.run(run())
    assert sorted(ours, key=repr) == sorted(theirs, key=repr)
    assert len(ours) == 3
    total = next(row for row in ours if row[2] == "#total")
    assert total[3] == 3 and total[4] is not None and total[4].replace(tzinfo=UTC) == AT
    assert next(row for row in ours if row[2] == "=192.0.2.1")[4] is None
    assert next(row for row in ours if row[0] == "!marker")[1:4] == ("none", "x", 7)
