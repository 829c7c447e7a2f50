"""Graph v1.0 routes for users, groups and memberships. Thin: parse, check permission, call the service,
render."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth import permissions as perm
from trustplane.auth.deps import DbSession, ReadSession, requires
from trustplane.auth.permissions import Principal
from trustplane.core.bodies import read_json_object, read_no_parameters
from trustplane.core.errors import BadRequest
from trustplane.core.events import Actor
from trustplane.core.ids import is_uuid
from trustplane.core.pagination import SortKey, fetch_page
from trustplane.directory import service
from trustplane.directory.models import Group, Membership, User
from trustplane.directory.repository import GroupRepository, MembershipRepository, UserRepository
from trustplane.graph.properties import GROUP, USER, EntityType
from trustplane.graph.query import (
    check_options,
    context_url,
    count_collection,
    equality_lookup,
    list_collection,
    next_link,
    parse_count,
    parse_select,
    parse_top,
)

router = APIRouter(prefix="/v1.0", tags=["graph"])

MAX_CHECK_GROUP_IDS = 20


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)


def text_count(n: int) -> Response:
    return Response(str(n), media_type="text/plain")


def actor_of(principal: Principal) -> Actor:
    return Actor(type=principal.kind, id=principal.id, name=principal.name)


def entity_body(request: Request, etype: EntityType, obj: Any, fragment: str) -> dict[str, Any]:
    options = check_options(request, {"$select"})
    select_ = parse_select(options, list(etype.by_wire))
    return {"@odata.context": context_url(request, fragment, select_), **etype.render(obj, select_)}


def reference_id(value: Any) -> str:
    """The object id at the end of an ``@odata.id`` / ``@odata.bind`` URL (…/directoryObjects/{id})."""
    if not isinstance(value, str) or not value:
        raise BadRequest("A reference must be a URL string ending with the object's id.")
    object_id = value.rstrip("/").rsplit("/", 1)[-1]
    if object_id.startswith("directoryObjects(") or "(" in object_id:
        object_id = object_id.split("(", 1)[1].rstrip(")").strip("'")
    if not is_uuid(object_id):
        raise BadRequest(f"'{value}' is not a valid reference to a directory object.")
    return object_id


def password_of(body: dict[str, Any], *, required: bool) -> tuple[str | None, bool | None]:
    profile = body.get("passwordProfile")
    if profile is None:
        if required:
            raise BadRequest("The property 'passwordProfile' is required when creating a user.")
        return None, None
    if not isinstance(profile, dict):
        raise BadRequest("Property 'passwordProfile' expects an object.")
    unknown = set(profile) - {
        "password",
        "forceChangePasswordNextSignIn",
        "forceChangePasswordNextSignInWithMfa",
        "@odata.type",
    }
    if unknown:
        raise BadRequest(
            f"Property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.passwordProfile'."
        )
    password = profile.get("password")
    if not isinstance(password, str) or not password:
        raise BadRequest("The passwordProfile must contain a non-empty string 'password'.")
    force = profile.get("forceChangePasswordNextSignIn")
    if force is not None and not isinstance(force, bool):
        raise BadRequest("Property 'forceChangePasswordNextSignIn' expects a boolean value.")
    return password, force


# ---------------------------------------------------------------- users


async def users_by_upn_lookup(
    request: Request, session: AsyncSession, tenant_id: str
) -> dict[str, Any] | None:
    """The body of ``GET /users?$filter=userPrincipalName eq '…'`` (perhaps with ``$select``) answered by key
    (row cache, driver-level read: 2-4x cheaper than compiling the query); None for any other query."""
    lookup = equality_lookup(request, USER, "userPrincipalName")
    if lookup is None:
        return None
    upn, select_ = lookup
    user = await service.find_user_by_upn(session, tenant_id, upn)
    found = [USER.render(user, select_)] if user is not None else []
    return {"@odata.context": context_url(request, "users", select_), "value": found}


@router.get("/users", summary="List users")
async def list_users(
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_USERS)),
    session: AsyncSession = ReadSession,
) -> Response:
    found = await users_by_upn_lookup(request, session, principal.tenant_id)
    if found is not None:
        return json(found)
    base = UserRepository(session, principal.tenant_id).select()
    return json(await list_collection(request, session, USER, base, "users"))


@router.get("/users/$count", summary="Count users")
async def count_users(
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_USERS)),
    session: AsyncSession = ReadSession,
) -> Response:
    base = UserRepository(session, principal.tenant_id).select()
    return text_count(await count_collection(request, session, USER, base))


@router.post("/users", status_code=201, summary="Create a user")
async def create_user(
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_USERS)),
    session: AsyncSession = DbSession,
) -> Response:
    body = await read_json_object(request)
    password, force = password_of(body, required=True)
    values = USER.parse(body, allow=("passwordProfile",))
    if "account_enabled" not in values:
        raise BadRequest("The property 'accountEnabled' is required when creating a user.")
    if force is not None:
        values["force_change_password"] = force
    user = await service.create_user(
        session, principal.tenant_id, actor_of(principal), values, password=password
    )
    return json({"@odata.context": context_url(request, "users/$entity"), **USER.render(user)}, 201)


@router.get("/users/{user_id}", summary="Get a user by id or userPrincipalName")
async def get_user(
    user_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_USERS)),
    session: AsyncSession = ReadSession,
) -> Response:
    user = await service.read_user(session, principal.tenant_id, user_id)
    return json(entity_body(request, USER, user, "users/$entity"))


@router.patch("/users/{user_id}", status_code=204, summary="Update a user")
async def update_user(
    user_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_USERS)),
    session: AsyncSession = DbSession,
) -> Response:
    body = await read_json_object(request)
    password, force = password_of(body, required=False)
    values = USER.parse(body, allow=("passwordProfile",))
    if force is not None:
        values["force_change_password"] = force
    await service.update_user(
        session, principal.tenant_id, actor_of(principal), user_id, values, password=password
    )
    return no_content()


@router.post("/users/{user_id}/revokeSignInSessions", summary="Revoke the user's sessions and refresh tokens")
async def revoke_sign_in_sessions(
    user_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_USERS)),
    session: AsyncSession = DbSession,
) -> Response:
    await read_no_parameters(request, "revokeSignInSessions")
    await service.revoke_sign_in_sessions(session, principal.tenant_id, actor_of(principal), user_id)
    return json({"@odata.context": context_url(request, "Edm.Boolean"), "value": True})


@router.delete("/users/{user_id}", status_code=204, summary="Delete a user")
async def delete_user(
    user_id: str,
    principal: Principal = Depends(requires(*perm.WRITE_USERS)),
    session: AsyncSession = DbSession,
) -> Response:
    await service.delete_user(session, principal.tenant_id, actor_of(principal), user_id)
    return no_content()


# ---------------------------------------------------------------- groups


@router.get("/groups", summary="List groups")
async def list_groups(
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    base = GroupRepository(session, principal.tenant_id).select()
    return json(await list_collection(request, session, GROUP, base, "groups"))


@router.get("/groups/$count", summary="Count groups")
async def count_groups(
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    base = GroupRepository(session, principal.tenant_id).select()
    return text_count(await count_collection(request, session, GROUP, base))


@router.post("/groups", status_code=201, summary="Create a group")
async def create_group(
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_GROUPS)),
    session: AsyncSession = DbSession,
) -> Response:
    body = await read_json_object(request)
    binds = body.get("members@odata.bind", [])
    if not isinstance(binds, list):
        raise BadRequest("'members@odata.bind' expects a list of directory object URLs.")
    member_ids = [reference_id(b) for b in binds]
    values = GROUP.parse(body, allow=("members@odata.bind",))
    group = await service.create_group(
        session, principal.tenant_id, actor_of(principal), values, member_ids=member_ids
    )
    return json({"@odata.context": context_url(request, "groups/$entity"), **GROUP.render(group)}, 201)


@router.get("/groups/{group_id}", summary="Get a group")
async def get_group(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    group = await service.get_group(session, principal.tenant_id, group_id)
    return json(entity_body(request, GROUP, group, "groups/$entity"))


@router.patch("/groups/{group_id}", status_code=204, summary="Update a group")
async def update_group(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_GROUPS)),
    session: AsyncSession = DbSession,
) -> Response:
    body = await read_json_object(request)
    binds = body.get("members@odata.bind", [])
    if not isinstance(binds, list):
        raise BadRequest("'members@odata.bind' expects a list of directory object URLs.")
    member_ids = [reference_id(b) for b in binds]
    values = GROUP.parse(body, allow=("members@odata.bind",))
    actor = actor_of(principal)
    await service.update_group(session, principal.tenant_id, actor, group_id, values)
    for member_id in member_ids:
        await service.add_member(session, principal.tenant_id, actor, group_id, member_id)
    return no_content()


@router.delete("/groups/{group_id}", status_code=204, summary="Delete a group")
async def delete_group(
    group_id: str,
    principal: Principal = Depends(requires(*perm.WRITE_GROUPS)),
    session: AsyncSession = DbSession,
) -> Response:
    await service.delete_group(session, principal.tenant_id, actor_of(principal), group_id)
    return no_content()


# ---------------------------------------------------------------- members (users and groups mixed)


DIRECTORY_OBJECT_PROPS = sorted(set(USER.by_wire) | set(GROUP.by_wire))


async def _directory_objects_page(
    request: Request, session: AsyncSession, tenant_id: str, ids_stmt: Select[Any], id_column: Any
) -> dict[str, Any]:
    """A page of directory objects (users and groups) whose ids ``ids_stmt`` selects, in id order."""
    settings = request.app.state.settings
    options = check_options(request, {"$select", "$top", "$count", "$skiptoken"})
    select_ = parse_select(options, DIRECTORY_OBJECT_PROPS)
    top = parse_top(options, settings.default_page_size, settings.max_page_size)
    want_count = parse_count(request, options)
    body: dict[str, Any] = {"@odata.context": context_url(request, "directoryObjects", select_)}
    if want_count:
        from trustplane.graph.query import count_of

        body["@odata.count"] = await count_of(session, ids_stmt)
    page = await fetch_page(
        session, ids_stmt, [SortKey(id_column, False, "string")], limit=top, token=options.get("$skiptoken")
    )
    ids = [str(i) for i in page.rows]
    users = {
        u.id: u
        for u in (
            await session.execute(UserRepository(session, tenant_id).select().where(User.id.in_(ids)))
        ).scalars()
    }
    groups = {
        g.id: g
        for g in (
            await session.execute(GroupRepository(session, tenant_id).select().where(Group.id.in_(ids)))
        ).scalars()
    }
    values = []
    for object_id in ids:
        obj: Any = users.get(object_id) or groups.get(object_id)
        if obj is None:
            continue
        etype = USER if isinstance(obj, User) else GROUP
        wanted = [s for s in select_ if s in etype.by_wire] if select_ else None
        values.append({"@odata.type": etype.odata_type, **etype.render(obj, wanted)})
    if page.next_token:
        body["@odata.nextLink"] = next_link(request, page.next_token)
    body["value"] = values
    return body


@router.get("/groups/{group_id}/members", summary="List a group's direct members")
async def list_members(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    group = await service.get_group(session, principal.tenant_id, group_id)
    repo = MembershipRepository(session, principal.tenant_id)
    ids = repo.select(Membership.member_id).where(Membership.group_id == group.id)
    return json(
        await _directory_objects_page(request, session, principal.tenant_id, ids, Membership.member_id)
    )


@router.get("/groups/{group_id}/members/$count", summary="Count a group's direct members")
async def count_members(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    from trustplane.graph.query import count_of, eventual_consistency

    if not eventual_consistency(request):
        raise BadRequest("Count is only supported with the header 'ConsistencyLevel: eventual'.")
    group = await service.get_group(session, principal.tenant_id, group_id)
    repo = MembershipRepository(session, principal.tenant_id)
    return text_count(
        await count_of(session, repo.select(Membership.member_id).where(Membership.group_id == group.id))
    )


@router.get("/groups/{group_id}/transitiveMembers", summary="List a group's members, transitively")
async def list_transitive_members(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    group = await service.get_group(session, principal.tenant_id, group_id)
    cte = MembershipRepository(session, principal.tenant_id).descendants(group.id)
    ids = select(cte.c.member_id).distinct()
    return json(await _directory_objects_page(request, session, principal.tenant_id, ids, cte.c.member_id))


@router.get("/groups/{group_id}/transitiveMembers/$count", summary="Count a group's members, transitively")
async def count_transitive_members(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = ReadSession,
) -> Response:
    from trustplane.graph.query import count_of, eventual_consistency

    if not eventual_consistency(request):
        raise BadRequest("Count is only supported with the header 'ConsistencyLevel: eventual'.")
    group = await service.get_group(session, principal.tenant_id, group_id)
    cte = MembershipRepository(session, principal.tenant_id).descendants(group.id)
    return text_count(await count_of(session, select(cte.c.member_id).distinct()))


@router.post("/groups/{group_id}/members/$ref", status_code=204, summary="Add a member to a group")
async def add_member(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_MEMBERS)),
    session: AsyncSession = DbSession,
) -> Response:
    body = await read_json_object(request)
    extra = set(body) - {"@odata.id"}
    if extra:
        raise BadRequest(f"Property '{sorted(extra)[0]}' is not valid in a reference; send only '@odata.id'.")
    member_id = reference_id(body.get("@odata.id"))
    await service.add_member(session, principal.tenant_id, actor_of(principal), group_id, member_id)
    return no_content()


@router.delete(
    "/groups/{group_id}/members/{member_id}/$ref", status_code=204, summary="Remove a member from a group"
)
async def remove_member(
    group_id: str,
    member_id: str,
    principal: Principal = Depends(requires(*perm.WRITE_MEMBERS)),
    session: AsyncSession = DbSession,
) -> Response:
    await service.remove_member(session, principal.tenant_id, actor_of(principal), group_id, member_id)
    return no_content()


# ---------------------------------------------------------------- memberOf / transitiveMemberOf / get-check


async def _subject(session: AsyncSession, tenant_id: str, kind: str, object_id: str) -> Any:
    if kind == "users":  # only read (every caller is a read-only route)
        return await service.read_user(session, tenant_id, object_id)
    return await service.get_group(session, tenant_id, object_id)


async def member_groups_answer(
    request: Request, session: AsyncSession, tenant_id: str, kind: str, object_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``getMemberGroups``'s answer for the parsed body (the route's and ``graph.fast_reads``' one code)."""
    body = parameters(body, {"securityEnabledOnly"}, "getMemberGroups")
    security_only = body.get("securityEnabledOnly")
    if not isinstance(security_only, bool):
        raise BadRequest("The parameter 'securityEnabledOnly' is required and must be a boolean.")
    subject = await _subject(session, tenant_id, kind, object_id)
    ids = await service.member_group_ids(session, tenant_id, subject.id, security_enabled_only=security_only)
    return {"@odata.context": context_url(request, "Collection(Edm.String)"), "value": ids}


# Each kind's getMemberGroups endpoint (graph.fast_reads checks a request was routed to the users' one).
MEMBER_GROUPS_ENDPOINTS: dict[str, Any] = {}


def parameters(body: dict[str, Any], allowed: set[str], action: str) -> dict[str, Any]:
    """An action's JSON parameters, refusing any it does not take (``@odata.type`` is always allowed)."""
    extra = set(body) - allowed - {"@odata.type"}
    if extra:
        raise BadRequest(f"Property '{sorted(extra)[0]}' is not a parameter of {action}.")
    return body


GROUP_CASTS = ("microsoft.graph.group", "graph.group")


def _register_membership_routes(kind: str) -> None:
    read = perm.READ_MEMBERSHIPS
    noun = "user" if kind == "users" else "group"

    def groups_of(transitive: bool, *, count: bool) -> Any:
        async def route(
            object_id: str,
            request: Request,
            principal: Principal = Depends(requires(*read)),
            session: AsyncSession = ReadSession,
        ) -> Response:
            subject = await _subject(session, principal.tenant_id, kind, object_id)
            ids = MembershipRepository(session, principal.tenant_id).groups_of(
                subject.id, transitive=transitive
            )
            base = GroupRepository(session, principal.tenant_id).select().where(Group.id.in_(ids))
            if count:
                return text_count(await count_collection(request, session, GROUP, base))
            body = await list_collection(request, session, GROUP, base, "directoryObjects")
            for item in body["value"]:
                item["@odata.type"] = GROUP.odata_type
            return json(body)

        return route

    for segment, transitive, what in (
        ("memberOf", False, f"Groups a {noun} is a direct member of"),
        ("transitiveMemberOf", True, f"Groups a {noun} belongs to, transitively"),
    ):
        path = f"/{kind}/{{object_id}}/{segment}"
        router.add_api_route(path, groups_of(transitive, count=False), methods=["GET"], summary=what)
        router.add_api_route(
            f"{path}/$count", groups_of(transitive, count=True), methods=["GET"], summary=what
        )
        for cast in GROUP_CASTS:  # the same collection under Graph's type-cast segment
            router.add_api_route(
                f"{path}/{cast}", groups_of(transitive, count=False), methods=["GET"], summary=what
            )

    async def get_member_groups(
        object_id: str,
        request: Request,
        principal: Principal = Depends(requires(*read)),
        session: AsyncSession = ReadSession,
    ) -> Response:
        body = await read_json_object(request)
        return json(await member_groups_answer(request, session, principal.tenant_id, kind, object_id, body))

    async def check_member_groups(
        object_id: str,
        request: Request,
        principal: Principal = Depends(requires(*read)),
        session: AsyncSession = ReadSession,
    ) -> Response:
        body = parameters(await read_json_object(request), {"groupIds"}, "checkMemberGroups")
        group_ids = body.get("groupIds")
        if not isinstance(group_ids, list) or not all(isinstance(g, str) for g in group_ids):
            raise BadRequest("The parameter 'groupIds' is required and must be a list of group ids.")
        if len(group_ids) > MAX_CHECK_GROUP_IDS:
            raise BadRequest(f"checkMemberGroups accepts at most {MAX_CHECK_GROUP_IDS} group ids.")
        subject = await _subject(session, principal.tenant_id, kind, object_id)
        found = await service.check_member_groups(session, principal.tenant_id, subject.id, group_ids)
        return json({"@odata.context": context_url(request, "Collection(Edm.String)"), "value": found})

    MEMBER_GROUPS_ENDPOINTS[kind] = get_member_groups
    router.add_api_route(
        f"/{kind}/{{object_id}}/getMemberGroups",
        get_member_groups,
        methods=["POST"],
        summary=f"Ids of every group a {noun} belongs to",
    )
    router.add_api_route(
        f"/{kind}/{{object_id}}/checkMemberGroups",
        check_member_groups,
        methods=["POST"],
        summary=f"Which of the given groups a {noun} belongs to",
    )


_register_membership_routes("users")
_register_membership_routes("groups")
