"""The schema: every table but `tenants` carries tenant_id, and the migrations build exactly the models."""

from __future__ import annotations

import uuid
import warnings

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

import trustplane.core.models_all  # noqa: F401
from tests.support.server import TestServer
from trustplane.core.db import Base
from trustplane.directory.models import User


def test_every_table_but_tenants_carries_tenant_id() -> None:
    missing = [t.name for t in Base.metadata.sorted_tables if t.name != "tenants" and "tenant_id" not in t.c]
    assert missing == []


def test_migrations_match_the_models(server: TestServer) -> None:
    def diff(sync_conn: object) -> list[object]:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # SQLite cannot reflect expression indexes; PostgreSQL checks them
            return list(compare_metadata(MigrationContext.configure(sync_conn), Base.metadata))  # type: ignore[arg-type]

    async def run() -> list[object]:
        async with server.db.engine.connect() as conn:
            return await conn.run_sync(diff)

    differences = server.run(run())
    if server.backend == "sqlite":
        # SQLite reports its reflected JSON/timestamp types loosely; only table and column sets must match.
        differences = [d for d in differences if not (isinstance(d, list) or str(d).startswith("('modify"))]
    assert differences == [], differences


def test_every_index_of_the_models_exists_in_the_database(server: TestServer) -> None:
    # compare_metadata cannot see expression indexes on SQLite, so ask the catalogue by name.
    if server.backend == "sqlite":
        present = {r[0] for r in server.rows("SELECT name FROM sqlite_master WHERE type = 'index'")}
    else:
        present = {r[0] for r in server.rows("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    expected = {ix.name for t in Base.metadata.sorted_tables for ix in t.indexes}
    assert sorted(expected - present) == []


def test_a_user_principal_name_is_unique_per_tenant_whatever_its_case(server: TestServer) -> None:
    # The directory service refuses the duplicate first; this checks the database itself holds the rule.
    tenant = server.tenant("User.ReadWrite.All")
    upn = f"case.{uuid.uuid4().hex[:8]}@schema.example.com"
    with tenant.client() as graph:
        created = graph.post(
            "/v1.0/users",
            json={
                "accountEnabled": True,
                "displayName": "Case Test",
                "mailNickname": "casetest",
                "userPrincipalName": upn,
                "passwordProfile": {"password": "A-long-enough-passw0rd!"},
            },
        )
        assert created.status_code == 201, created.text
    columns = [c.name for c in User.__table__.columns]
    chosen = {"id": ":new_id", "user_principal_name": ":new_upn"}
    copy = sa.text(
        f"INSERT INTO users ({', '.join(columns)}) "
        f"SELECT {', '.join(chosen.get(c, c) for c in columns)} FROM users WHERE id = :id"
    )

    async def insert_twin() -> None:
        async with server.db.session() as session:
            await session.execute(
                copy, {"id": created.json()["id"], "new_id": str(uuid.uuid4()), "new_upn": upn.upper()}
            )
            await session.commit()

    with pytest.raises(IntegrityError):
        server.run(insert_twin())
    assert server.scalar("SELECT count(*) FROM users WHERE lower(user_principal_name) = :u", u=upn) == 1


def test_sqlite_keeps_feature_counts_in_key_order_and_the_migration_keeps_every_row(tmp_path: object) -> None:
    """Migration 0012 rebuilds ``protection_feature_counts`` WITHOUT ROWID on SQLite (a user's counts are
    then neighbours in the file): the rows written before it are all there after it, and after its
    downgrade."""
    import asyncio
    from pathlib import Path

    from alembic import command
    from sqlalchemy.ext.asyncio import create_async_engine

    from trustplane.core.migrate import alembic_config, upgrade

    engine = create_async_engine(f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'm.db'}")
    at = "2026-01-01 00:00:00.000000"
    rows = [("t1", f"user-{i % 7}", "ip", f"=10.0.0.{i}", i, at) for i in range(300)]

    async def run() -> tuple[list[tuple[object, ...]], str, list[tuple[object, ...]], str]:
        await upgrade(engine, "0011")
        async with engine.begin() as conn:
            await conn.execute(sa.text("PRAGMA foreign_keys = OFF"))
            await conn.execute(
                sa.text(
                    "INSERT INTO protection_feature_counts (tenant_id, subject, feature, value, count, "
                    "first_seen_at) VALUES (:t, :s, :f, :v, :n, :at)"
                ),
                [dict(zip(("t", "s", "f", "v", "n", "at"), row, strict=True)) for row in rows],
            )
        await upgrade(engine, "0012")
        query = (
            "SELECT tenant_id, subject, feature, value, count, first_seen_at FROM protection_feature_counts"
        )
        table_sql = "SELECT sql FROM sqlite_master WHERE name = 'protection_feature_counts'"
        async with engine.connect() as conn:
            after = sorted(tuple(r) for r in (await conn.execute(sa.text(query))).all())
            kind = (await conn.execute(sa.text(table_sql))).scalar_one()
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0011"))
        async with engine.connect() as conn:
            back = sorted(tuple(r) for r in (await conn.execute(sa.text(query))).all())
            kind_back = (await conn.execute(sa.text(table_sql))).scalar_one()
        await engine.dispose()
        return after, kind, back, kind_back

    after, kind, back, kind_back = asyncio.run(run())
    assert after == sorted(rows) and back == sorted(rows)
    assert kind.rstrip().endswith("WITHOUT ROWID") and "WITHOUT ROWID" not in kind_back


def test_feature_counts_are_read_from_the_primary_key_alone(server: TestServer) -> None:
    """Migration 0012: SQLite stores the table as its primary key's B-tree (WITHOUT ROWID), PostgreSQL's
    primary key carries the count and the first-seen time (an index-only scan reads a range of counts: the
    tenant's snapshot)."""
    if server.backend == "sqlite":
        (sql,) = server.rows("SELECT sql FROM sqlite_master WHERE name = 'protection_feature_counts'")[0]
        assert sql.rstrip().endswith("WITHOUT ROWID")
    else:
        (definition,) = server.rows(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'pk_protection_feature_counts'"
        )[0]
        assert definition.endswith("(tenant_id, subject, feature, value) INCLUDE (count, first_seen_at)")


def test_migration_0013_moves_each_users_counts_into_one_row_and_back(
    server: TestServer, tmp_path: object
) -> None:
    """Migration 0013 on a database of this backend: every user's rows of ``protection_feature_counts``
    become one ``protection_user_counts`` row holding the same counts, with the user's history start (the
    "ip" "#total" row's first-seen time); the tenant-wide rows stay; the downgrade writes the same counts back
    as rows."""
    import asyncio
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from alembic import command
    from sqlalchemy.ext.asyncio import create_async_engine

    from tests.support.server import create_pg_database, drop_pg_database
    from trustplane.core.migrate import alembic_config, upgrade
    from trustplane.protection.repository import decode_counts

    postgres = server.backend == "postgresql"
    if postgres:
        url, name = create_pg_database()
    else:
        url, name = f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'm13.db'}", ""
    engine = create_async_engine(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[tuple[str, str, str, str, int, datetime]] = []
    for u in range(3):
        subject = f"user-{u}"
        rows.append(("t1", subject, "ip", "#total", 10 + u, start + timedelta(days=u)))
        rows.append(("t1", subject, "ip", "#distinct", 2, start + timedelta(days=u, hours=1)))
        rows += [
            ("t1", subject, "ip", f"=10.0.{u}.{i}", 5 + i, start + timedelta(days=u + i)) for i in range(2)
        ]
        rows.append(("t1", subject, "ua", '=Mozilla/5.0 (X11; "quoted")', 10 + u, start + timedelta(days=u)))
    tenant_wide = [("t1", "*", "ip", "#total", 30, start), ("t1", "*", "ip", "=10.0.0.0", 5, start)]
    insert = sa.text(
        "INSERT INTO protection_feature_counts (tenant_id, subject, feature, value, count, first_seen_at) "
        "VALUES (:t, :s, :f, :v, :n, :at)"
    )
    keys = ("t", "s", "f", "v", "n", "at")
    read_rows = "SELECT tenant_id, subject, feature, value, count FROM protection_feature_counts"
    read_moved = "SELECT tenant_id, user_id, counts, revision, first_seen_at FROM protection_user_counts"

    async def run() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
        await upgrade(engine, "0012")
        async with engine.begin() as conn:
            if postgres:
                await conn.execute(sa.text("SET session_replication_role = replica"))  # no tenants row
            else:
                await conn.execute(sa.text("PRAGMA foreign_keys = OFF"))
            await conn.execute(insert, [dict(zip(keys, row, strict=True)) for row in rows + tenant_wide])
        await upgrade(engine)
        async with engine.connect() as conn:
            moved = [tuple(r) for r in await conn.execute(sa.text(read_moved))]
            left = [tuple(r) for r in await conn.execute(sa.text(read_rows))]
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0012"))
        async with engine.connect() as conn:
            back = [tuple(r) for r in await conn.execute(sa.text(read_rows))]
        await engine.dispose()
        return moved, left, back

    try:
        moved, left, back = asyncio.run(run())
    finally:
        if postgres:
            drop_pg_database(name)
    expected: dict[str, dict[str, dict[str, int]]] = {}
    for _, subject, feature, value, count, _ in rows:
        expected.setdefault(subject, {}).setdefault(feature, {})[value] = count
    assert {user: decode_counts(str(counts)) for _, user, counts, _, _ in moved} == expected
    assert {r[3] for r in moved} == {1}
    history_start = {user: str(seen)[:19] for _, user, _, _, seen in moved}
    assert history_start == {f"user-{u}": str(start + timedelta(days=u))[:19] for u in range(3)}
    assert sorted(left) == sorted(r[:5] for r in tenant_wide)
    assert sorted(back) == sorted(r[:5] for r in rows + tenant_wide)
