"""Every query of the SCIM face, tenant-scoped: the filter field maps (SCIM attribute -> column, JSON value
or ``directory_values`` rows), lists with filter / sort / paging, members and groups of a page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from trustplane.core.repository import TenantRepository
from trustplane.directory.models import DirectoryValue, Group, Membership, User
from trustplane.directory.repository import GroupRepository, MembershipRepository, UserRepository
from trustplane.directory.service import UPN_RE
from trustplane.scim.errors import invalid_filter, invalid_value
from trustplane.scim.filter import AttrPath, Compare, Field, Multi, Node, Scalar, to_sql
from trustplane.scim.resources import ABSENT
from trustplane.scim.schemas import ENTERPRISE_SCHEMA, USER_TYPE, ResourceType

SCIM_VALUE_PREFIX = "scim."


def _json(column: Any, *keys: str) -> Any:
    return column[keys if len(keys) > 1 else keys[0]].as_string()


def _unless_absent(column: Any, name: str) -> Any:
    """A column the directory cannot leave empty, as SCIM sees it: NULL when the client removed it
    (resources.ABSENT)."""
    removed = _json(User.scim_attributes, ABSENT, name).isnot(None)
    return case((removed, None), else_=column)


def _user_name_eq(value: str) -> ColumnElement[bool]:
    """userName eq, in the form the unique indexes serve: a UPN-shaped userName is the UPN itself (such users
    have no separate user_name), any other is the user_name column."""
    if UPN_RE.match(value):
        return and_(func.lower(User.user_principal_name) == value.lower(), User.user_name.is_(None))
    return and_(User.user_name.isnot(None), func.lower(User.user_name) == value.lower())  # two-valued


def _values_multi(owner_id: Any, tenant_id: Any, attr: str) -> Multi:
    """A multi-valued complex attribute kept in directory_values as ``scim.<attr>:<primary>:<type>``."""
    dv = aliased(DirectoryValue)
    prefix = f"{SCIM_VALUE_PREFIX}{attr}:"
    type_start = len(prefix) + 3  # after "<primary>:"

    def exists_where(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(
            select(literal(1))
            .select_from(dv)
            .where(dv.tenant_id == tenant_id, dv.object_id == owner_id, dv.attr.like(prefix + "%"), condition)
        )

    return Multi(
        exists_where,
        {
            "value": Scalar(dv.value),
            "type": Scalar(func.nullif(func.substr(dv.attr, type_start), "")),
            "primary": Scalar(func.substr(dv.attr, len(prefix) + 1, 1) == "1", "boolean"),
        },
    )


def _membership_multi(correlate: Callable[[Any], ColumnElement[bool]], value_column: str) -> Multi:
    edge = aliased(Membership)

    def exists_where(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(select(literal(1)).select_from(edge).where(correlate(edge), condition))

    kind = case((edge.member_type == "user", "User"), else_="Group")
    return Multi(
        exists_where,
        {"value": Scalar(getattr(edge, value_column), case_exact=True), "type": Scalar(kind)},
    )


def _common(model: Any) -> dict[str, Field]:
    return {
        "id": Scalar(model.id, case_exact=True),
        "externalid": Scalar(model.external_id, case_exact=True),
        "meta.created": Scalar(model.created_at, "dateTime"),
        "meta.lastmodified": Scalar(model.updated_at, "dateTime"),
    }


def user_fields() -> dict[str, Field]:
    extra = User.scim_attributes
    fields: dict[str, Field] = {
        **_common(User),
        "username": Scalar(func.coalesce(User.user_name, User.user_principal_name), eq=_user_name_eq),
        "displayname": Scalar(_unless_absent(User.display_name, "displayName")),
        "name.givenname": Scalar(User.given_name),
        "name.familyname": Scalar(User.surname),
        "title": Scalar(User.job_title),
        "active": Scalar(_unless_absent(User.account_enabled, "active"), "boolean"),
        "emails": _values_multi(User.id, User.tenant_id, "emails"),
        "phonenumbers": _values_multi(User.id, User.tenant_id, "phoneNumbers"),
        "groups": _membership_multi(
            lambda e: and_(e.tenant_id == User.tenant_id, e.member_id == User.id), "group_id"
        ),
        f"{ENTERPRISE_SCHEMA.lower()}:department": Scalar(User.department),
        f"{ENTERPRISE_SCHEMA.lower()}:organization": Scalar(User.company_name),
    }
    for name in ("nickName", "profileUrl", "userType", "preferredLanguage", "locale", "timezone"):
        fields[name.lower()] = Scalar(_json(extra, name))
    for sub in ("formatted", "middleName", "honorificPrefix", "honorificSuffix"):
        fields[f"name.{sub.lower()}"] = Scalar(_json(extra, "name", sub))
    for name in ("employeeNumber", "costCenter", "division"):
        fields[f"{ENTERPRISE_SCHEMA.lower()}:{name.lower()}"] = Scalar(_json(extra, "enterprise", name))
    fields[f"{ENTERPRISE_SCHEMA.lower()}:manager.value"] = Scalar(
        _json(extra, "enterprise", "manager", "value")
    )
    return fields


def group_fields() -> dict[str, Field]:
    return {
        **_common(Group),
        "displayname": Scalar(Group.display_name),
        "members": _membership_multi(
            lambda e: and_(e.tenant_id == Group.tenant_id, e.group_id == Group.id), "member_id"
        ),
    }


_FIELDS: dict[str, dict[str, Field]] = {}


def fields_for(rtype: ResourceType) -> dict[str, Field]:
    if rtype.name not in _FIELDS:
        _FIELDS[rtype.name] = user_fields() if rtype is USER_TYPE else group_fields()
    return _FIELDS[rtype.name]


def resolver(
    rtype: ResourceType, error: Callable[[str], Exception] = invalid_filter
) -> Callable[[AttrPath], Field]:
    fields = fields_for(rtype)
    core = rtype.schema.id.lower()

    def resolve(path: AttrPath) -> Field:
        schema = (path.schema or "").lower()
        head = path.attr.lower()
        if schema and schema != core:
            key = f"{schema}:{head}"
        else:
            key = head
        sub_key = f"{key}.{path.sub.lower()}" if path.sub else None
        if sub_key and sub_key in fields:
            return fields[sub_key]
        field = fields.get(key)
        if field is None or (path.sub and not isinstance(field, Multi)):
            raise error(f"'{path}' is not an attribute a {rtype.name} can be filtered or sorted on.")
        return field

    return resolve


def _upn_lookup(rtype: ResourceType, node: Node | None) -> str | None:
    """The value of a filter that is exactly ``userName eq "<a userPrincipalName>"``, else None."""
    if rtype is not USER_TYPE or not isinstance(node, Compare) or node.op != "eq":
        return None
    path = node.path
    if path.attr.lower() != "username" or path.sub is not None:
        return None
    if path.schema is not None and path.schema.lower() != USER_TYPE.schema.id.lower():
        return None
    value = node.value
    return value if isinstance(value, str) and UPN_RE.match(value) else None


class ScimValueRepository(TenantRepository[DirectoryValue]):
    """The ``scim.*`` rows of directory_values (emails and phone numbers by type, for filters)."""

    model = DirectoryValue

    async def replace(self, object_id: str, rows: dict[str, list[str]]) -> None:
        await self.session.execute(
            self.delete_where(
                DirectoryValue.object_id == object_id, DirectoryValue.attr.like(SCIM_VALUE_PREFIX + "%")
            )
        )
        for attr, values in rows.items():
            for value in values:
                self.add(DirectoryValue(object_id=object_id, attr=attr, value=value))


class ScimQueries:
    """The SCIM face's reads, each started from a tenant-scoped repository's ``select``."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.dialect = session.get_bind().dialect.name
        self.users = UserRepository(session, tenant_id)
        self.groups = GroupRepository(session, tenant_id)
        self.memberships = MembershipRepository(session, tenant_id)

    def _base(self, rtype: ResourceType, node: Node | None) -> Select[Any]:
        stmt = self.users.select() if rtype is USER_TYPE else self.groups.select()
        if node is not None:
            stmt = stmt.where(to_sql(node, resolver(rtype), self.dialect))
        return stmt

    async def search(
        self,
        rtype: ResourceType,
        node: Node | None,
        *,
        sort_by: AttrPath | None,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[Any], int]:
        """One page and the total. The total costs no second query when the page shows everything."""
        upn = _upn_lookup(rtype, node)
        if upn is not None and sort_by is None and offset == 0 and limit > 0:
            # Provisioning clients look users up by userName before every change: answer it as Graph answers
            # a UPN lookup (one indexed row, from the row cache when the session may use it).
            record = await self.users.record_by_upn(upn)
            found = [record] if record is not None and record.user_name is None else []
            return found, len(found)
        model: Any = User if rtype is USER_TYPE else Group
        base = self._base(rtype, node)
        rows: list[Any] = []
        if limit > 0:
            order: list[Any] = []
            if sort_by is not None:
                field = resolver(rtype, invalid_value)(sort_by)
                if not isinstance(field, Scalar) or not field.sortable:
                    raise invalid_value(f"'{sort_by}' cannot be sorted on.")
                order.append(field.expr.desc() if descending else field.expr.asc())
            order.append(model.id)
            page = base.order_by(*order).offset(offset).limit(limit)
            rows = list((await self.session.execute(page)).scalars())
        if (offset == 0 or rows) and len(rows) < limit:
            return rows, offset + len(rows)
        total = await self.session.execute(
            select(func.count()).select_from(base.with_only_columns(model.id).subquery())
        )
        return rows, int(total.scalar_one())

    async def groups_of(self, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """The direct groups of each user: (group id, display name)."""
        if not user_ids:
            return {}
        stmt = (
            self.memberships.select(Membership.member_id, Group.id, Group.display_name)
            .join(Group, Group.id == Membership.group_id)
            .where(Membership.member_id.in_(user_ids))
            .order_by(Group.display_name, Group.id)
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for member_id, group_id, name in await self.session.execute(stmt):
            out.setdefault(member_id, []).append((group_id, name))
        return out

    async def members_of(self, group_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """The direct members of each group: (member id, "user" | "group")."""
        if not group_ids:
            return {}
        stmt = (
            self.memberships.select(Membership.group_id, Membership.member_id, Membership.member_type)
            .where(Membership.group_id.in_(group_ids))
            .order_by(Membership.created_at, Membership.member_id)
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for group_id, member_id, member_type in await self.session.execute(stmt):
            out.setdefault(group_id, []).append((member_id, member_type))
        return out

    async def is_member(self, group_id: str, member_id: str) -> bool:
        stmt = self.memberships.select(literal(1)).where(
            Membership.group_id == group_id, Membership.member_id == member_id
        )
        return (await self.session.execute(stmt)).first() is not None

    async def user_name_taken(self, user_name: str, upn: str, exclude_id: str | None) -> bool:
        stmt = self.users.select(User.id).where(
            (func.lower(User.user_name) == user_name.lower())
            | (func.lower(User.user_principal_name) == upn.lower()),
        )
        if exclude_id is not None:
            stmt = stmt.where(User.id != exclude_id)
        return (await self.session.execute(stmt.limit(1))).first() is not None
