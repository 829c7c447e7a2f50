"""Graph routes over directory objects of either type: ``/directoryObjects/{id}``, ``getByIds``, the
type-cast segments (``members/microsoft.graph.user``, ``memberOf/microsoft.graph.group``, …) and the
``$ref`` collection forms the SDK uses. The rules stay in the directory service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth import permissions as perm
from trustplane.auth.deps import DbSession, base_url, requires
from trustplane.auth.permissions import Principal
from trustplane.core.bodies import read_json_object
from trustplane.core.errors import BadRequest
from trustplane.core.ids import is_uuid
from trustplane.directory import service
from trustplane.directory.models import Group, Membership, User
from trustplane.directory.repository import GroupRepository, MembershipRepository, UserRepository
from trustplane.graph.api import actor_of, json, no_content, parameters, reference_id
from trustplane.graph.properties import GROUP, USER, EntityType
from trustplane.graph.query import check_options, context_url, list_collection

router = APIRouter(prefix="/v1.0", tags=["graph"])

READ_ANY = tuple(dict.fromkeys((*perm.READ_USERS, *perm.READ_GROUPS)))
MAX_GET_BY_IDS = 1000
CASTS: dict[str, EntityType] = {
    "microsoft.graph.user": USER,
    "graph.user": USER,
    "microsoft.graph.group": GROUP,
    "graph.group": GROUP,
}


def _typed(obj: User | Group) -> dict[str, Any]:
    etype = USER if isinstance(obj, User) else GROUP
    return {"@odata.type": etype.odata_type, **etype.render(obj)}


@router.get("/directoryObjects/{object_id}", summary="Get a directory object (user or group) by id")
async def get_directory_object(
    object_id: str,
    request: Request,
    principal: Principal = Depends(requires(*READ_ANY)),
    session: AsyncSession = DbSession,
) -> Response:
    check_options(request, set())
    obj = await service.resolve_object(session, principal.tenant_id, object_id)
    if not principal.has_any(perm.READ_USERS if isinstance(obj, User) else perm.READ_GROUPS):
        # Answer as if absent: the caller may not learn that an object of a type it cannot read exists.
        raise service.not_found(object_id)
    return json({"@odata.context": context_url(request, "directoryObjects/$entity"), **_typed(obj)})


@router.post("/directoryObjects/getByIds", summary="Get directory objects by a list of ids")
async def get_by_ids(
    request: Request,
    principal: Principal = Depends(requires(*READ_ANY)),
    session: AsyncSession = DbSession,
) -> Response:
    body = parameters(await read_json_object(request), {"ids", "types"}, "getByIds")
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("The parameter 'ids' is required and must be a list of object ids.")
    if len(ids) > MAX_GET_BY_IDS:
        raise BadRequest(f"getByIds accepts at most {MAX_GET_BY_IDS} ids.")
    types = body.get("types") or ["user", "group"]
    if not isinstance(types, list) or not set(types) <= {"user", "group"}:
        raise BadRequest("The parameter 'types' may list only 'user' and 'group'.")
    wanted = [i for i in ids if is_uuid(i)]
    found: dict[str, User | Group] = {}
    if "user" in types and principal.has_any(perm.READ_USERS):
        stmt = UserRepository(session, principal.tenant_id).select().where(User.id.in_(wanted))
        found.update({u.id: u for u in (await session.execute(stmt)).scalars()})
    if "group" in types and principal.has_any(perm.READ_GROUPS):
        stmt = GroupRepository(session, principal.tenant_id).select().where(Group.id.in_(wanted))
        found.update({g.id: g for g in (await session.execute(stmt)).scalars()})
    values = [_typed(found[i]) for i in dict.fromkeys(wanted) if i in found]
    return json({"@odata.context": context_url(request, "directoryObjects"), "value": values})


def _register_casts() -> None:
    """``/groups/{id}/members/microsoft.graph.user`` and friends: a single-type collection, so the full
    OData options of that type ($filter, $orderby, $count, …) apply. (memberOf's casts live with memberOf.)"""

    def member_cast(etype: EntityType, transitive: bool) -> Any:
        member_type = etype.name

        async def route(
            group_id: str,
            request: Request,
            principal: Principal = Depends(requires(*perm.READ_GROUPS)),
            session: AsyncSession = DbSession,
        ) -> Response:
            group = await service.get_group(session, principal.tenant_id, group_id)
            memberships = MembershipRepository(session, principal.tenant_id)
            if transitive:
                cte = memberships.descendants(group.id)
                ids = select(cte.c.member_id).where(cte.c.member_type == member_type)
            else:
                ids = memberships.direct_members_of(group.id, member_type)
            repo = (UserRepository if etype is USER else GroupRepository)(session, principal.tenant_id)
            base = repo.select().where(etype.model.id.in_(ids))
            plural = f"{etype.name}s"
            return json(await list_collection(request, session, etype, base, plural))

        return route

    for cast, etype in CASTS.items():
        for segment, transitive in (("members", False), ("transitiveMembers", True)):
            router.add_api_route(
                f"/groups/{{group_id}}/{segment}/{cast}",
                member_cast(etype, transitive),
                methods=["GET"],
                summary=f"A group's {segment} of type {etype.name}",
            )


_register_casts()


@router.get("/groups/{group_id}/members/$ref", summary="List a group's direct members as references")
async def list_member_refs(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.READ_GROUPS)),
    session: AsyncSession = DbSession,
) -> Response:
    check_options(request, set())
    group = await service.get_group(session, principal.tenant_id, group_id)
    repo = MembershipRepository(session, principal.tenant_id)
    stmt = (
        repo.select(Membership.member_id)
        .where(Membership.group_id == group.id)
        .order_by(Membership.member_id)
    )
    base = base_url(request)
    refs = [
        {"@odata.id": f"{base}/v1.0/directoryObjects/{m}"} for m in (await session.execute(stmt)).scalars()
    ]
    return json({"@odata.context": context_url(request, "Collection($ref)"), "value": refs})


@router.delete("/groups/{group_id}/members/$ref", status_code=204, summary="Remove a member given by $id")
async def remove_member_by_query(
    group_id: str,
    request: Request,
    principal: Principal = Depends(requires(*perm.WRITE_MEMBERS)),
    session: AsyncSession = DbSession,
) -> Response:
    ref = request.query_params.get("$id") or request.query_params.get("@id")
    if not ref:
        raise BadRequest("Name the member to remove with the query option '$id' (its directoryObjects URL).")
    member_id = reference_id(ref)
    await service.remove_member(session, principal.tenant_id, actor_of(principal), group_id, member_id)
    return no_content()
