"""The SCIM face's operations, mapped onto the directory's rules (``directory.service``): one model, two
faces, so a change over SCIM emits the same events and audit entries as the same change over Graph. Takes a
session and plain values; never commits (except Bulk, whose operations each commit on their own, as RFC 7644
§3.7 lets them)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.db import Database
from trustplane.core.errors import DomainError, NotFound, PayloadTooLarge, PreconditionFailed
from trustplane.core.events import Actor
from trustplane.core.ids import is_uuid
from trustplane.directory import service as directory
from trustplane.directory.models import Group, User
from trustplane.directory.repository import TenantLookup, UserRepository
from trustplane.scim.errors import (
    ScimError,
    error_body,
    invalid_path,
    invalid_syntax,
    invalid_value,
    status_and_type,
    uniqueness,
)
from trustplane.scim.filter import Compare, Node, Or, PatchPath, evaluate, parse_filter, split_attr_path
from trustplane.scim.patch import Operation, apply, parse_operations
from trustplane.scim.repository import ScimQueries, ScimValueRepository
from trustplane.scim.resources import (
    Dialect,
    Projection,
    coerce,
    group_document,
    group_values,
    normalize,
    parse_if_match,
    render_group,
    render_member,
    render_user,
    user_document,
    user_multi_values,
    user_values,
)
from trustplane.scim.schemas import (
    BULK_REQUEST,
    BULK_RESPONSE,
    GROUP_TYPE,
    LIST_RESPONSE,
    MAX_BULK_OPERATIONS,
    MAX_RESULTS,
    USER_TYPE,
    ResourceType,
)

DEFAULT_COUNT = 100


@dataclass(frozen=True)
class ScimContext:
    tenant_id: str
    actor: Actor
    base: str  # the SCIM base URL, e.g. https://host/scim/v2
    dialect: Dialect


def scim_not_found(kind: str, object_id: str) -> NotFound:
    return NotFound(f"{kind} '{object_id}' not found.")


async def get_user(session: AsyncSession, ctx: ScimContext, user_id: str) -> User:
    try:
        return await directory.get_user(session, ctx.tenant_id, user_id)
    except NotFound:
        raise scim_not_found("User", user_id) from None


async def read_user(session: AsyncSession, ctx: ScimContext, user_id: str) -> Any:
    """A user for a read-only request: an immutable record (``UserRepository.record``), which renders as a
    User does."""
    record = await UserRepository(session, ctx.tenant_id).record(user_id) if is_uuid(user_id) else None
    if record is None:
        raise scim_not_found("User", user_id)
    return record


async def get_group(session: AsyncSession, ctx: ScimContext, group_id: str) -> Group:
    try:
        return await directory.get_group(session, ctx.tenant_id, group_id)
    except NotFound:
        raise scim_not_found("Group", group_id) from None


async def _claim(session: AsyncSession, obj: User | Group, if_match: set[int] | None) -> None:
    """If-Match: the object must still be at one of the given versions; ``*`` arrives as None."""
    if if_match is None:
        return
    if obj.version not in if_match:
        raise PreconditionFailed(
            f"The resource '{obj.id}' has changed: its version is now W/\"{obj.version}\"."
        )
    await directory.claim_version(session, obj, obj.version)


# ---------------------------------------------------------------- rendering


async def render_users(
    session: AsyncSession, ctx: ScimContext, users: list[User], projection: Projection
) -> list[dict[str, Any]]:
    groups = (
        await ScimQueries(session, ctx.tenant_id).groups_of([u.id for u in users])
        if projection.wants("groups")
        else {}
    )
    return [projection.apply(USER_TYPE, render_user(u, ctx.base, groups.get(u.id))) for u in users]


async def render_groups(
    session: AsyncSession, ctx: ScimContext, groups: list[Group], projection: Projection
) -> list[dict[str, Any]]:
    members = (
        await ScimQueries(session, ctx.tenant_id).members_of([g.id for g in groups])
        if projection.wants("members")
        else {}
    )
    return [projection.apply(GROUP_TYPE, render_group(g, ctx.base, members.get(g.id))) for g in groups]


async def render(
    session: AsyncSession, ctx: ScimContext, obj: User | Group, projection: Projection | None = None
) -> dict[str, Any]:
    projection = projection or Projection()
    if isinstance(obj, Group):
        return (await render_groups(session, ctx, [obj], projection))[0]
    return (await render_users(session, ctx, [obj], projection))[0]  # a User, or a user record


# ---------------------------------------------------------------- users


async def _tenant_domain(session: AsyncSession, tenant_id: str) -> str:
    tenant = await TenantLookup(session).by_id_or_domain(tenant_id)
    return tenant.domain if tenant is not None else "scim.invalid"


async def _check_user_name(
    session: AsyncSession, ctx: ScimContext, values: dict[str, Any], user_id: str | None
) -> None:
    name = values["user_name"] or values["user_principal_name"]
    if await ScimQueries(session, ctx.tenant_id).user_name_taken(
        name, values["user_principal_name"], user_id
    ):
        raise uniqueness(f"A user with userName '{name}' already exists.")


async def _write_user(
    session: AsyncSession, ctx: ScimContext, doc: dict[str, Any], user: User | None
) -> User:
    domain = await _tenant_domain(session, ctx.tenant_id)
    values, password = user_values(doc, domain, creating=user is None)
    if password is not None and not isinstance(password, str):
        raise invalid_value("'password' must be a string.")
    await _check_user_name(session, ctx, values, user.id if user else None)
    if user is None:
        user = await directory.create_user(session, ctx.tenant_id, ctx.actor, values, password=password)
    else:
        user = await directory.update_user(
            session, ctx.tenant_id, ctx.actor, user.id, values, password=password
        )
    await ScimValueRepository(session, ctx.tenant_id).replace(user.id, user_multi_values(doc))
    return user


async def create_user(session: AsyncSession, ctx: ScimContext, body: dict[str, Any]) -> User:
    return await _write_user(session, ctx, normalize(USER_TYPE, body, ctx.dialect, check_schemas=True), None)


async def replace_user(
    session: AsyncSession, ctx: ScimContext, user_id: str, body: dict[str, Any], if_match: set[int] | None
) -> User:
    user = await get_user(session, ctx, user_id)
    doc = normalize(USER_TYPE, body, ctx.dialect, check_schemas=True)
    await _claim(session, user, if_match)
    return await _write_user(session, ctx, doc, user)


async def patch_user(
    session: AsyncSession, ctx: ScimContext, user_id: str, body: dict[str, Any], if_match: set[int] | None
) -> tuple[User, bool]:
    """The user, and False: a user's PATCH always answers with the resource (see ``patch_group``)."""
    user = await get_user(session, ctx, user_id)
    operations = parse_operations(body, ctx.dialect)
    doc = apply(USER_TYPE, user_document(user), operations, ctx.dialect)
    await _claim(session, user, if_match)
    return await _write_user(session, ctx, doc, user), False


async def delete_user(
    session: AsyncSession, ctx: ScimContext, user_id: str, if_match: set[int] | None
) -> None:
    user = await get_user(session, ctx, user_id)
    await _claim(session, user, if_match)
    await directory.delete_user(session, ctx.tenant_id, ctx.actor, user.id)


# ---------------------------------------------------------------- groups

_MEMBERS = GROUP_TYPE.schema.attr("members")
assert _MEMBERS is not None
MEMBERS = _MEMBERS


def _member_ids(value: Any, dialect: Dialect) -> list[str]:
    """The ids of a ``members`` value (a list of {"value": id, "$ref": …, "type": …})."""
    items = coerce(MEMBERS, value, "members", dialect) or []
    ids: list[str] = []
    for item in items:
        member_id = item.get("value")
        if not isinstance(member_id, str):
            raise invalid_value("Every member needs a 'value' with the member's id.")
        if member_id not in ids:
            ids.append(member_id)
    return ids


async def _add_members(session: AsyncSession, ctx: ScimContext, group: Group, ids: list[str]) -> None:
    queries = ScimQueries(session, ctx.tenant_id)
    for member_id in ids:
        if is_uuid(member_id) and await queries.is_member(group.id, member_id):
            continue  # adding a value that is there already changes nothing (RFC 7644 §3.5.2.1)
        try:
            await directory.add_member(session, ctx.tenant_id, ctx.actor, group.id, member_id)
        except NotFound:
            raise invalid_value(f"No user or group with id '{member_id}' exists in this tenant.") from None


async def _remove_members(session: AsyncSession, ctx: ScimContext, group: Group, ids: list[str]) -> None:
    queries = ScimQueries(session, ctx.tenant_id)
    for member_id in ids:
        if is_uuid(member_id) and await queries.is_member(group.id, member_id):
            await directory.remove_member(session, ctx.tenant_id, ctx.actor, group.id, member_id)


async def _current_members(session: AsyncSession, ctx: ScimContext, group: Group) -> list[tuple[str, str]]:
    return (await ScimQueries(session, ctx.tenant_id).members_of([group.id])).get(group.id, [])


async def _set_members(session: AsyncSession, ctx: ScimContext, group: Group, ids: list[str]) -> None:
    current = [m for m, _ in await _current_members(session, ctx, group)]
    await _remove_members(session, ctx, group, [m for m in current if m not in ids])
    await _add_members(session, ctx, group, [m for m in ids if m not in current])


def _values_selected(node: Node) -> list[str] | None:
    """``value eq "a" or value eq "b"``: the ids it names, so removal needs no member list; else None."""
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and node.path.attr.lower() == "value"
        and node.path.sub is None
    ):
        return [str(node.value)] if isinstance(node.value, str) else []
    if isinstance(node, Or):
        left, right = _values_selected(node.left), _values_selected(node.right)
        return None if left is None or right is None else left + right
    return None


def _is_members_op(operation: Operation) -> bool:
    path = operation.path
    return (
        path is not None
        and path.attr.lower() == "members"
        and (path.schema is None or path.schema.lower() == GROUP_TYPE.schema.id.lower())
    )


def _split_group_ops(operations: list[Operation]) -> tuple[list[Operation], list[Operation]]:
    """Member operations (each becomes single-edge changes, O(1) in the group's size) and the others."""
    members: list[Operation] = []
    others: list[Operation] = []
    for operation in operations:
        if _is_members_op(operation):
            members.append(operation)
        elif operation.path is None and isinstance(operation.value, dict):
            rest = {k: v for k, v in operation.value.items() if k.lower() != "members"}
            listed = [v for k, v in operation.value.items() if k.lower() == "members"]
            if listed:
                members.append(Operation(operation.op, PatchPath(None, "members", None, None), listed[0]))
            if rest:
                others.append(Operation(operation.op, None, rest))
        else:
            others.append(operation)
    return members, others


async def _apply_member_op(
    session: AsyncSession, ctx: ScimContext, group: Group, operation: Operation
) -> None:
    path = operation.path
    assert path is not None
    if path.sub is not None:
        raise invalid_path(
            "The sub-attributes of 'members' cannot be changed; add or remove members instead."
        )
    if operation.op == "add":
        if path.filter is not None:
            raise invalid_path("'add' takes the path 'members' and the members to add as its value.")
        await _add_members(session, ctx, group, _member_ids(operation.value, ctx.dialect))
    elif operation.op == "replace":
        if path.filter is not None:
            raise invalid_path("'replace' takes the path 'members' and the whole member list as its value.")
        await _set_members(session, ctx, group, _member_ids(operation.value, ctx.dialect))
    elif path.filter is None:
        if operation.value is not None:  # Entra's dialect: the value lists the members to remove
            await _remove_members(session, ctx, group, _member_ids(operation.value, ctx.dialect))
        else:
            await _set_members(session, ctx, group, [])
    else:
        selected = _values_selected(path.filter)
        if selected is None:
            members = await _current_members(session, ctx, group)
            selected = [m for m, kind in members if evaluate(path.filter, render_member(ctx.base, m, kind))]
        await _remove_members(session, ctx, group, selected)


async def create_group(session: AsyncSession, ctx: ScimContext, body: dict[str, Any]) -> Group:
    doc = normalize(GROUP_TYPE, body, ctx.dialect, check_schemas=True)
    group = await directory.create_group(session, ctx.tenant_id, ctx.actor, group_values(doc, creating=True))
    await _add_members(session, ctx, group, _member_ids(doc.get("members"), ctx.dialect))
    return group


async def replace_group(
    session: AsyncSession, ctx: ScimContext, group_id: str, body: dict[str, Any], if_match: set[int] | None
) -> Group:
    group = await get_group(session, ctx, group_id)
    doc = normalize(GROUP_TYPE, body, ctx.dialect, check_schemas=True)
    await _claim(session, group, if_match)
    group = await directory.update_group(
        session, ctx.tenant_id, ctx.actor, group.id, group_values(doc, creating=False)
    )
    await _set_members(session, ctx, group, _member_ids(doc.get("members"), ctx.dialect))
    return group


async def patch_group(
    session: AsyncSession, ctx: ScimContext, group_id: str, body: dict[str, Any], if_match: set[int] | None
) -> tuple[Group, bool]:
    """The group, and whether members changed (then the answer is 204: rendering every member of a large
    group would make a one-member change cost O(group size))."""
    group = await get_group(session, ctx, group_id)
    operations = parse_operations(body, ctx.dialect)
    member_ops, other_ops = _split_group_ops(operations)
    await _claim(session, group, if_match)
    if other_ops:
        doc = apply(GROUP_TYPE, group_document(group), other_ops, ctx.dialect)
        group = await directory.update_group(
            session, ctx.tenant_id, ctx.actor, group.id, group_values(doc, creating=False)
        )
    for operation in member_ops:
        await _apply_member_op(session, ctx, group, operation)
    return group, bool(member_ops)


async def delete_group(
    session: AsyncSession, ctx: ScimContext, group_id: str, if_match: set[int] | None
) -> None:
    group = await get_group(session, ctx, group_id)
    await _claim(session, group, if_match)
    await directory.delete_group(session, ctx.tenant_id, ctx.actor, group.id)


Body = dict[str, Any]
IfMatch = set[int] | None  # the versions If-Match accepts; None: any


@dataclass(frozen=True)
class ResourceOps:
    """What the face does with one resource type; the routes and Bulk dispatch through it."""

    rtype: ResourceType
    read: Callable[[AsyncSession, ScimContext, str], Awaitable[Any]]
    create: Callable[[AsyncSession, ScimContext, dict[str, Any]], Awaitable[Any]]
    replace: Callable[[AsyncSession, ScimContext, str, dict[str, Any], set[int] | None], Awaitable[Any]]
    patch: Callable[
        [AsyncSession, ScimContext, str, dict[str, Any], set[int] | None], Awaitable[tuple[Any, bool]]
    ]
    delete: Callable[[AsyncSession, ScimContext, str, set[int] | None], Awaitable[None]]


RESOURCE_OPS = (
    ResourceOps(USER_TYPE, read_user, create_user, replace_user, patch_user, delete_user),
    ResourceOps(GROUP_TYPE, get_group, create_group, replace_group, patch_group, delete_group),
)


# ---------------------------------------------------------------- queries


@dataclass(frozen=True)
class SearchParams:
    filter: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    start_index: int = 1
    count: int | None = None
    attributes: str | None = None
    excluded_attributes: str | None = None

    @classmethod
    def from_values(cls, raw: dict[str, Any]) -> SearchParams:
        def integer(name: str) -> int | None:
            value = raw.get(name)
            if value is None or value == "":
                return None
            if isinstance(value, bool):
                raise invalid_value(f"'{name}' must be an integer.")
            try:
                return int(value)
            except (TypeError, ValueError):
                raise invalid_value(f"'{name}' must be an integer, not {value!r}.") from None

        def text(name: str) -> str | None:
            value = raw.get(name)
            if value is None:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return ",".join(value)
            if not isinstance(value, str):
                raise invalid_value(f"'{name}' must be a string.")
            return value

        order = text("sortOrder")
        if order is not None and order.lower() not in ("ascending", "descending"):
            raise invalid_value("'sortOrder' must be 'ascending' or 'descending'.")
        return cls(
            filter=text("filter"),
            sort_by=text("sortBy"),
            sort_order=order,
            start_index=max(1, integer("startIndex") or 1),
            count=integer("count"),
            attributes=text("attributes"),
            excluded_attributes=text("excludedAttributes"),
        )


async def search(
    session: AsyncSession, ctx: ScimContext, rtypes: list[ResourceType], params: SearchParams
) -> dict[str, Any]:
    node = parse_filter(params.filter) if params.filter is not None else None
    sort_by = split_attr_path(params.sort_by, 0, invalid_value) if params.sort_by else None
    descending = (params.sort_order or "").lower() == "descending"
    count = DEFAULT_COUNT if params.count is None else max(0, min(params.count, MAX_RESULTS))
    offset = params.start_index - 1
    queries = ScimQueries(session, ctx.tenant_id)
    resources: list[dict[str, Any]] = []
    total = 0
    for rtype in rtypes:
        try:
            rows, found = await queries.search(
                rtype,
                node,
                sort_by=sort_by,
                descending=descending,
                offset=max(0, offset - total),
                limit=count - len(resources),
            )
        except ScimError:
            if len(rtypes) == 1:
                raise
            continue  # a root search: a filter naming another type's attributes matches none of this type
        projection = Projection.parse(rtype, params.attributes, params.excluded_attributes)
        if rtype is USER_TYPE:
            resources += await render_users(session, ctx, rows, projection)
        else:
            resources += await render_groups(session, ctx, rows, projection)
        total += found
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": params.start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# ---------------------------------------------------------------- bulk

_BULK_PATH = re.compile(r"^/(Users|Groups)(?:/([^/]+))?$", re.IGNORECASE)


def _resolve_bulk_ids(value: Any, created: dict[str, str]) -> Any:
    """Replace ``bulkId:<id>`` references by the ids the earlier operations created."""
    if isinstance(value, str) and value.startswith("bulkId:"):
        key = value[len("bulkId:") :]
        if key not in created:
            raise ScimError(
                409, "invalidValue", f"'{value}' names no resource created earlier in this request."
            )
        return created[key]
    if isinstance(value, list):
        return [_resolve_bulk_ids(v, created) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_bulk_ids(v, created) for k, v in value.items()}
    return value


def _version_of(raw: Any) -> set[int] | None:
    return parse_if_match(raw) if isinstance(raw, str) else None


async def _bulk_operation(
    db: Database, ctx: ScimContext, operation: dict[str, Any], created: dict[str, str]
) -> dict[str, Any]:
    method = str(operation.get("method", "")).upper()
    raw_path = operation.get("path")
    if method not in ("POST", "PUT", "PATCH", "DELETE") or not isinstance(raw_path, str):
        raise invalid_syntax("Every operation needs a 'method' (POST, PUT, PATCH, DELETE) and a 'path'.")
    resolved_path = re.sub(r"bulkId:([^/]+)", lambda m: _resolve_bulk_ids(m.group(0), created), raw_path)
    match = _BULK_PATH.match(resolved_path)
    if match is None:
        raise invalid_path(f"'{raw_path}' is not a path of /Users or /Groups.")
    rtype = USER_TYPE if match.group(1).lower() == "users" else GROUP_TYPE
    object_id = match.group(2)
    if (method == "POST") != (object_id is None):
        raise invalid_path(
            f"{method} takes {'a collection' if method == 'POST' else 'a resource'} path, not '{raw_path}'."
        )
    if method == "POST" and not operation.get("bulkId"):
        raise invalid_syntax("A POST operation needs a 'bulkId'.")
    data = _resolve_bulk_ids(operation.get("data"), created)
    if method != "DELETE" and not isinstance(data, dict):
        raise invalid_syntax(f"A {method} operation needs 'data' (an object).")
    if_match = _version_of(operation.get("version"))
    result: dict[str, Any] = {"method": method}
    if operation.get("bulkId"):
        result["bulkId"] = operation["bulkId"]
    ops = RESOURCE_OPS[0] if rtype is USER_TYPE else RESOURCE_OPS[1]
    async with db.session() as session:
        obj: User | Group | None = None
        if method == "POST":
            obj = await ops.create(session, ctx, data)
        elif method == "PUT":
            obj = await ops.replace(session, ctx, str(object_id), data, if_match)
        elif method == "PATCH":
            obj = (await ops.patch(session, ctx, str(object_id), data, if_match))[0]
        else:
            await ops.delete(session, ctx, str(object_id), if_match)
        if obj is not None:
            result["location"] = f"{ctx.base}{rtype.endpoint}/{obj.id}"
            result["version"] = f'W/"{obj.version}"'
            if method == "POST":
                created[str(operation["bulkId"])] = obj.id
    result["status"] = {"POST": "201", "DELETE": "204"}.get(method, "200")
    return result


async def bulk(db: Database, ctx: ScimContext, body: dict[str, Any]) -> dict[str, Any]:
    schemas = body.get("schemas")
    if not ctx.dialect.tolerant and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise invalid_syntax(f"A Bulk request's 'schemas' must be ['{BULK_REQUEST}'].")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("A Bulk request needs a non-empty 'Operations' list.")
    if len(operations) > MAX_BULK_OPERATIONS:
        raise PayloadTooLarge(f"A Bulk request may carry at most {MAX_BULK_OPERATIONS} operations.")
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
    ):
        raise invalid_value("'failOnErrors' must be a positive integer.")
    created: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    errors = 0
    for operation in operations:
        if not isinstance(operation, dict):
            raise invalid_syntax("Every Bulk operation must be an object.")
        try:
            results.append(await _bulk_operation(db, ctx, operation, created))
        except DomainError as exc:
            status, scim_type = status_and_type(exc)
            failed: dict[str, Any] = {
                "method": str(operation.get("method", "")).upper(),
                "status": str(status),
            }
            if operation.get("bulkId"):
                failed["bulkId"] = operation["bulkId"]
            failed["response"] = error_body(status, exc.message, scim_type)
            results.append(failed)
            errors += 1
            if fail_on_errors is not None and errors >= fail_on_errors:
                break
    return {"schemas": [BULK_RESPONSE], "Operations": results}
