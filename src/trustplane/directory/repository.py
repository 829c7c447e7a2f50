"""Every directory query, scoped by tenant through ``TenantRepository``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CTE, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.cache import cached_table
from trustplane.core.db import READ_ONLY
from trustplane.core.repository import TenantRepository
from trustplane.directory.models import AuditEntry, DirectoryValue, Group, Membership, Tenant, User


class TenantLookup:
    """Tenants are the scope itself, so this is the one repository without a tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id_or_domain(self, key: str) -> Tenant | None:
        stmt = select(Tenant).where((Tenant.id == key) | (func.lower(Tenant.domain) == key.lower()))
        return (await self.session.execute(stmt)).scalars().first()

    async def default(self) -> Tenant | None:
        return (
            (await self.session.execute(select(Tenant).where(Tenant.is_default.is_(True)))).scalars().first()
        )


def upn_key(upn: str) -> str:
    """How a userPrincipalName is compared: case-insensitively (``lower()`` on both sides, as in $filter)."""
    return upn.lower()


# Users are the hot reads of the Graph face (GET by id, by userPrincipalName, the subject of memberOf and
# getMemberGroups): read-only requests may answer them from the row cache (core.cache).
cached_table(User.__tablename__, key=lambda row: upn_key(row.user_principal_name))

_UPN_KEY = func.lower(User.__table__.c.user_principal_name)
_USER_RECORD_BY_UPN = select(User.__table__).where(
    User.__table__.c.tenant_id == bindparam("_tenant_id"), _UPN_KEY == bindparam("_upn")
)


class UserRepository(TenantRepository[User]):
    model = User

    async def by_upn(self, upn: str) -> User | None:
        stmt = self.select().where(func.lower(User.user_principal_name) == upn_key(upn))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def record_by_upn(self, upn: str) -> Any | None:
        """``by_upn`` as an immutable record, from the row cache when it has it (see ``record``)."""
        key = upn_key(upn)
        if self.session.info.get(READ_ONLY) is not None:
            return await self.batched_record(
                lambda cache: cache.get_by_key(self.tenant_id, key), "upn", _UPN_KEY, key
            )
        return await self.cached_record(
            lambda cache: cache.get_by_key(self.tenant_id, key),
            _USER_RECORD_BY_UPN,
            {"_tenant_id": self.tenant_id, "_upn": key},
        )


class GroupRepository(TenantRepository[Group]):
    model = Group

    async def existing_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        result = await self.session.execute(self.select(Group.id).where(Group.id.in_(ids)))
        return set(result.scalars())


class DirectoryValueRepository(TenantRepository[DirectoryValue]):
    model = DirectoryValue

    async def replace(self, object_id: str, attr: str, values: list[str]) -> None:
        await self.session.execute(
            self.delete_where(DirectoryValue.object_id == object_id, DirectoryValue.attr == attr)
        )
        for value in values:
            self.add(DirectoryValue(object_id=object_id, attr=attr, value=value))

    async def remove_object(self, object_id: str) -> None:
        await self.session.execute(self.delete_where(DirectoryValue.object_id == object_id))


class MembershipRepository(TenantRepository[Membership]):
    model = Membership

    async def edge(self, group_id: str, member_id: str) -> Membership | None:
        stmt = self.select().where(Membership.group_id == group_id, Membership.member_id == member_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def remove_object(self, object_id: str) -> None:
        """Drop every edge touching ``object_id`` (as a member, and as a group with members)."""
        await self.session.execute(self.delete_where(Membership.member_id == object_id))
        await self.session.execute(self.delete_where(Membership.group_id == object_id))

    def ancestors(self, object_id: str) -> CTE:
        """Every group ``object_id`` belongs to, directly or through nested groups."""
        base = self.select(Membership.group_id.label("group_id")).where(Membership.member_id == object_id)
        cte = base.cte("ancestors", recursive=True)
        step = self.select(Membership.group_id).where(Membership.member_id == cte.c.group_id)
        return cte.union(step)

    def descendants(self, group_id: str) -> CTE:
        """Every member of ``group_id``, directly or through nested groups (users and groups)."""
        base = self.select(
            Membership.member_id.label("member_id"), Membership.member_type.label("member_type")
        )
        cte = base.where(Membership.group_id == group_id).cte("descendants", recursive=True)
        step = self.select(Membership.member_id, Membership.member_type).where(
            Membership.group_id == cte.c.member_id
        )
        return cte.union(step)

    def direct_groups_of(self, object_id: str) -> Select[Any]:
        return self.select(Membership.group_id).where(Membership.member_id == object_id)

    def groups_of(self, object_id: str, *, transitive: bool) -> Select[Any]:
        """Ids of the groups ``object_id`` is a member of: directly, or through nested groups too."""
        if not transitive:
            return self.direct_groups_of(object_id)
        return select(self.ancestors(object_id).c.group_id)

    def direct_members_of(self, group_id: str, member_type: str) -> Select[Any]:
        return self.select(Membership.member_id).where(
            Membership.group_id == group_id, Membership.member_type == member_type
        )

    async def is_ancestor(self, group_id: str, of_object: str) -> bool:
        anc = self.ancestors(of_object)
        result = await self.session.execute(select(anc.c.group_id).where(anc.c.group_id == group_id).limit(1))
        return result.first() is not None


class AuditRepository(TenantRepository[AuditEntry]):
    model = AuditEntry

    async def for_event(self, event_id: str) -> AuditEntry | None:
        stmt = self.select().where(AuditEntry.event_id == event_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()
