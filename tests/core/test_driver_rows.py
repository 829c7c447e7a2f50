"""``core.db.driver_rows`` runs a SELECT straight on the driver of the session's connection: the rows equal
what SQLAlchemy's own execution gives (literals of the statement, text, integers, times, NULLs, a union),
and the read sees the session's uncommitted writes (it runs in the session's transaction). A ``small`` read on
SQLite runs on a read-only connection of its own while the transaction has written nothing, and sees the
same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Integer, String, and_, bindparam, case, literal, null, select, union_all

from tests.support.server import TestServer
from trustplane.core import db
from trustplane.core.db import driver_rows
from trustplane.protection.models import FeatureCount

AT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def statement() -> Any:
    first = case(
        (and_(FeatureCount.feature == "ip", FeatureCount.value == "#total"), FeatureCount.first_seen_at),
        else_=null(),
    )
    return union_all(
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


def rows_of(tenant_id: str, subject: str) -> list[FeatureCount]:
    return [
        FeatureCount(
            tenant_id=tenant_id, subject=subject, feature="ip", value="#total", count=3, first_seen_at=AT
        ),
        FeatureCount(
            tenant_id=tenant_id, subject=subject, feature="ip", value="=192.0.2.1", count=2, first_seen_at=AT
        ),
    ]


def check(ours: list[Any], theirs: list[Any]) -> None:
    assert sorted(ours, key=repr) == sorted(theirs, key=repr)
    assert len(ours) == 3
    total = next(row for row in ours if row[2] == "#total")
    assert total[3] == 3 and total[4] is not None and total[4].replace(tzinfo=UTC) == AT
    assert next(row for row in ours if row[2] == "=192.0.2.1")[4] is None
    assert next(row for row in ours if row[0] == "!marker")[1:4] == ("none", "x", 7)


@pytest.mark.parametrize("small", [False, True])
def test_driver_rows_equal_sqlalchemys_rows_and_see_the_transactions_writes(
    server: TestServer, small: bool
) -> None:
    tenant_id = server.tenant().tenant_id
    subject = f"driver-rows-{small}"
    stmt = statement()
    params = {"tenant": tenant_id, "subject": subject}

    async def run() -> tuple[list[Any], list[Any]]:
        async with server.db.session() as session:
            session.add_all(rows_of(tenant_id, subject))
            await session.flush()  # not committed: only the session's own transaction sees these rows
            ours = await driver_rows(session, stmt, params, small=small)
            theirs = [tuple(row) for row in (await session.execute(stmt, params)).all()]
            await session.rollback()
            return ours, theirs

    ours, theirs = server.run(run())
    check(ours, theirs)


def test_a_small_read_of_committed_rows_on_sqlite_takes_the_side_reader(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing written in the session's transaction, a small read on SQLite goes to the read-only
    connection in this thread and gives what SQLAlchemy's execution gives; PostgreSQL has no such path."""
    tenant_id = server.tenant().tenant_id
    subject = "driver-rows-committed"
    stmt = statement()
    params = {"tenant": tenant_id, "subject": subject}
    used: list[Any] = []
    side_reader = db._side_reader

    def spy(engine: Any) -> Any:
        reader = side_reader(engine)
        used.append(reader)
        return reader

    monkeypatch.setattr(db, "_side_reader", spy)

    async def run() -> tuple[list[Any], list[Any]]:
        async with server.db.session() as session:
            session.add_all(rows_of(tenant_id, subject))
            await session.commit()
        async with server.db.session() as session:
            ours = await driver_rows(session, stmt, params, small=True)
            theirs = [tuple(row) for row in (await session.execute(stmt, params)).all()]
            return ours, theirs

    ours, theirs = server.run(run())
    check(ours, theirs)
    if server.backend == "sqlite":
        assert len(used) == 1 and used[0] is not None
    else:
        assert used == []
