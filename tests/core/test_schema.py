"""The schema: every table but `tenants` carries tenant_id, and the migrations build exactly the models."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import trustplane.core.models_all  # noqa: F401
from tests.support.server import TestServer
from trustplane.core.db import Base


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
