"""Every conditional access query, tenant-scoped through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Text, cast, func, insert, update

from trustplane.access.models import ConditionalAccessPolicy, NamedLocation, PolicyRevision
from trustplane.core.repository import TenantRepository


class PolicyRepository(TenantRepository[ConditionalAccessPolicy]):
    model = ConditionalAccessPolicy

    async def all(self) -> Sequence[ConditionalAccessPolicy]:
        stmt = self.select().order_by(ConditionalAccessPolicy.created_at, ConditionalAccessPolicy.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def referencing(self, object_id: str) -> list[str]:
        """Names of the policies whose JSON mentions ``object_id`` (a named location being deleted)."""
        stmt = self.select(ConditionalAccessPolicy.display_name).where(
            cast(ConditionalAccessPolicy.body, Text).contains(object_id)
        )
        return list((await self.session.execute(stmt)).scalars())


class NamedLocationRepository(TenantRepository[NamedLocation]):
    model = NamedLocation

    async def all(self) -> Sequence[NamedLocation]:
        stmt = self.select().order_by(NamedLocation.created_at, NamedLocation.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def count(self) -> int:
        return int((await self.session.execute(self.select(func.count(NamedLocation.id)))).scalar_one())

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        stmt = self.select(NamedLocation.id).where(NamedLocation.id.in_(list(ids)))
        return set((await self.session.execute(stmt)).scalars())


class RevisionRepository(TenantRepository[PolicyRevision]):
    model = PolicyRevision

    async def current(self) -> int:
        stmt = self.select(PolicyRevision.revision)
        return int((await self.session.execute(stmt)).scalar_one_or_none() or 0)

    async def bump(self) -> None:
        result = await self.session.execute(
            update(PolicyRevision)
            .where(PolicyRevision.tenant_id == self.tenant_id)
            .values(revision=PolicyRevision.revision + 1)
        )
        if getattr(result, "rowcount", 0) == 0:
            await self.session.execute(insert(PolicyRevision).values(tenant_id=self.tenant_id, revision=1))
