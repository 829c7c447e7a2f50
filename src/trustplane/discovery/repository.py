"""Every discovery query. All are tenant-scoped through TenantRepository, except the one lookup a signed
upload URL makes before it knows the tenant (the URL's secret is the credential)."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import Table, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.repository import TenantRepository
from trustplane.discovery.models import (
    DiscoveryAggregate,
    DiscoveryAppGovernance,
    DiscoverySettings,
    DiscoveryStream,
    DiscoveryUnmatched,
    DiscoveryUpload,
)
from trustplane.discovery.processing import APP_KEYS, SUMS, UNMATCHED_KEYS


async def upload_for_signed_url(session: AsyncSession, upload_id: str) -> DiscoveryUpload | None:
    """Unscoped on purpose: the caller of a signed URL has no token, only the URL's secret, which the
    service checks against this row before anything else."""
    return await session.get(DiscoveryUpload, upload_id)


class UploadRepository(TenantRepository[DiscoveryUpload]):
    model = DiscoveryUpload

    async def advance_checkpoint(self, upload_id: str, expected_offset: int, values: dict[str, Any]) -> bool:
        """Compare-and-set on the offset: a slice commits only if nobody committed one since it started."""
        result = await self.session.execute(
            update(DiscoveryUpload)
            .where(
                DiscoveryUpload.tenant_id == self.tenant_id,
                DiscoveryUpload.id == upload_id,
                DiscoveryUpload.offset == expected_offset,
                DiscoveryUpload.status == "processing",
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


class StreamRepository(TenantRepository[DiscoveryStream]):
    model = DiscoveryStream

    async def by_name(self, name: str, *, is_snapshot: bool) -> DiscoveryStream | None:
        stmt = self.select().where(DiscoveryStream.name == name, DiscoveryStream.is_snapshot == is_snapshot)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def all(self) -> list[DiscoveryStream]:
        stmt = self.select().order_by(DiscoveryStream.created_at, DiscoveryStream.id)
        return list((await self.session.execute(stmt)).scalars())


class SettingsRepository(TenantRepository[DiscoverySettings]):
    model = DiscoverySettings

    async def current(self, *, for_update: bool = False) -> DiscoverySettings | None:
        """The tenant's row; ``for_update`` locks it (PostgreSQL) for a read-modify-write of its JSON."""
        stmt = self.select().with_for_update() if for_update else self.select()
        return (await self.session.execute(stmt)).scalar_one_or_none()


class GovernanceRepository(TenantRepository[DiscoveryAppGovernance]):
    model = DiscoveryAppGovernance

    async def of_app(self, app_id: str) -> DiscoveryAppGovernance | None:
        stmt = self.select().where(DiscoveryAppGovernance.app_id == app_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def all(self) -> list[DiscoveryAppGovernance]:
        stmt = self.select().order_by(DiscoveryAppGovernance.app_id)
        return list((await self.session.execute(stmt)).scalars())


class AggregateRepository(TenantRepository[DiscoveryAggregate]):
    model = DiscoveryAggregate

    async def seen_apps(self, app_ids: list[str]) -> set[str]:
        """Which of ``app_ids`` already have traffic in any of this tenant's reports."""
        if not app_ids:
            return set()
        stmt = self.select(DiscoveryAggregate.app_id).where(DiscoveryAggregate.app_id.in_(app_ids)).distinct()
        return {str(v) for v in (await self.session.execute(stmt)).scalars()}

    async def lock_app_discovery(self) -> None:
        """Serialise "is this app new in the tenant?" between concurrent slices (PostgreSQL; SQLite has one
        writer at a time anyway), so each app is announced once."""
        if self.session.get_bind().dialect.name == "postgresql":
            key = f"discovery-apps:{self.tenant_id}"
            await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})

    async def add_sums(self, stream_id: str, frame: pl.DataFrame) -> None:
        await _add_sums(
            self.session, DiscoveryAggregate.__table__, self.tenant_id, stream_id, frame, APP_KEYS
        )


class UnmatchedRepository(TenantRepository[DiscoveryUnmatched]):
    model = DiscoveryUnmatched

    async def add_sums(self, stream_id: str, frame: pl.DataFrame) -> None:
        await _add_sums(
            self.session, DiscoveryUnmatched.__table__, self.tenant_id, stream_id, frame, UNMATCHED_KEYS
        )


async def _add_sums(
    session: AsyncSession,
    table: Any,
    tenant_id: str,
    stream_id: str,
    frame: pl.DataFrame,
    keys: tuple[str, ...],
) -> None:
    """Add ``frame``'s sums onto existing rows (insert, or on conflict add): one statement, many rows."""
    if frame.height == 0:
        return
    assert isinstance(table, Table)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "stream_id", *keys],
        set_={name: table.c[name] + stmt.excluded[name] for name in SUMS},
    )
    for start in range(0, frame.height, 2000):  # a few thousand row dicts at a time, never the whole slice
        rows = [
            {"tenant_id": tenant_id, "stream_id": stream_id, **row}
            for row in frame.slice(start, 2000).iter_rows(named=True)
        ]
        await session.execute(stmt, rows)
