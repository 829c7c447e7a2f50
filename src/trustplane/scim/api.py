"""The SCIM 2.0 face (RFC 7644) under ``/scim/v2``: parses the wire format, checks ``Scim.ReadWrite.All``,
calls ``scim.service`` and renders. The tenant is the API token's; the token's settings choose the dialect."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import DbSession, ReadSession, base_url, requires
from trustplane.auth.permissions import SCIM_READWRITE_ALL, Principal
from trustplane.core.bodies import read_json_object
from trustplane.core.errors import BadRequest, NotFound
from trustplane.core.events import Actor
from trustplane.directory.models import Group, User
from trustplane.scim import service
from trustplane.scim.errors import MEDIA_TYPE, ScimError, invalid_syntax
from trustplane.scim.resources import Dialect, Projection, etag, parse_if_match
from trustplane.scim.schemas import (
    GROUP_TYPE,
    LIST_RESPONSE,
    RESOURCE_TYPES,
    SCHEMAS,
    SEARCH_REQUEST,
    USER_TYPE,
    ResourceType,
    service_provider_config,
)
from trustplane.scim.service import ScimContext, SearchParams

PREFIX = "/scim/v2"
router = APIRouter(prefix=PREFIX, tags=["scim"])
Scim = Depends(requires(SCIM_READWRITE_ALL))


def context(request: Request, principal: Principal) -> ScimContext:
    return ScimContext(
        tenant_id=principal.tenant_id,
        actor=Actor(type=principal.kind, id=principal.id, name=principal.name, channel="scim"),
        base=base_url(request) + PREFIX,
        dialect=Dialect.from_settings(principal.settings),
    )


def scim_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def list_response(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


async def read_body(request: Request) -> dict[str, Any]:
    try:
        return await read_json_object(request)
    except BadRequest as exc:
        raise invalid_syntax(exc.message) from None


def resource_response(body: dict[str, Any], obj: User | Group, status: int = 200) -> Response:
    headers = (
        {"ETag": etag(obj), "Location": body["meta"]["location"]} if "meta" in body else {"ETag": etag(obj)}
    )
    return scim_json(body, status, headers)


# ---------------------------------------------------------------- discovery


@router.get("/ServiceProviderConfig", summary="SCIM service provider configuration")
async def get_service_provider_config(request: Request, principal: Principal = Scim) -> Response:
    ctx = context(request, principal)
    return scim_json(service_provider_config(ctx.base, request.app.state.settings.max_body_bytes))


@router.get("/ResourceTypes", summary="SCIM resource types")
async def list_resource_types(request: Request, principal: Principal = Scim) -> Response:
    base = context(request, principal).base
    return scim_json(list_response([t.to_json(base) for t in RESOURCE_TYPES.values()]))


@router.get("/ResourceTypes/{name}", summary="One SCIM resource type")
async def get_resource_type(name: str, request: Request, principal: Principal = Scim) -> Response:
    rtype = RESOURCE_TYPES.get(name)
    if rtype is None:
        raise NotFound(f"Resource type '{name}' not found.")
    return scim_json(rtype.to_json(context(request, principal).base))


@router.get("/Schemas", summary="SCIM schemas")
async def list_schemas(request: Request, principal: Principal = Scim) -> Response:
    base = context(request, principal).base
    return scim_json(list_response([s.to_json(base) for s in SCHEMAS.values()]))


@router.get("/Schemas/{schema_id}", summary="One SCIM schema")
async def get_schema(schema_id: str, request: Request, principal: Principal = Scim) -> Response:
    schema = SCHEMAS.get(schema_id)
    if schema is None:
        raise NotFound(f"Schema '{schema_id}' not found.")
    return scim_json(schema.to_json(context(request, principal).base))


async def me(principal: Principal = Scim) -> Response:
    raise ScimError(501, None, "/Me is not supported: SCIM callers authenticate as API tokens, not as users.")


for me_method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/Me", me, methods=[me_method], name=f"me_{me_method.lower()}", summary="Not supported (501)"
    )


# ---------------------------------------------------------------- queries


async def _search(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    rtypes: list[ResourceType],
    params: SearchParams,
) -> Response:
    return scim_json(await service.search(session, context(request, principal), rtypes, params))


async def _search_body(request: Request) -> SearchParams:
    body = await read_body(request)
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST not in schemas:
        raise invalid_syntax(f"A search request's 'schemas' must be ['{SEARCH_REQUEST}'].")
    return SearchParams.from_values(body)


@router.post("/.search", summary="Search users and groups")
async def search_root(
    request: Request, session: AsyncSession = ReadSession, principal: Principal = Scim
) -> Response:
    params = await _search_body(request)
    return await _search(request, session, principal, [USER_TYPE, GROUP_TYPE], params)


def _projection(request: Request, rtype: ResourceType) -> Projection:
    return Projection.parse(
        rtype, request.query_params.get("attributes"), request.query_params.get("excludedAttributes")
    )


def _if_match(request: Request) -> set[int] | None:
    return parse_if_match(request.headers.get("if-match"))


def resource_routes(ops: service.ResourceOps) -> None:
    """The same seven routes for every resource type (``/Users``, ``/Groups``)."""
    rtype = ops.rtype
    noun = rtype.name.lower()

    async def list_resources(
        request: Request, session: AsyncSession = ReadSession, principal: Principal = Scim
    ) -> Response:
        params = SearchParams.from_values(dict(request.query_params))
        return await _search(request, session, principal, [rtype], params)

    async def search_resources(
        request: Request, session: AsyncSession = ReadSession, principal: Principal = Scim
    ) -> Response:
        return await _search(request, session, principal, [rtype], await _search_body(request))

    async def get_resource(
        object_id: str, request: Request, session: AsyncSession = ReadSession, principal: Principal = Scim
    ) -> Response:
        ctx = context(request, principal)
        obj = await ops.read(session, ctx, object_id)
        none_match = request.headers.get("if-none-match")
        if none_match is not None and (
            none_match.strip() == "*" or obj.version in (parse_if_match(none_match) or set())
        ):
            return Response(status_code=304, headers={"ETag": etag(obj)})
        return resource_response(await service.render(session, ctx, obj, _projection(request, rtype)), obj)

    async def create_resource(
        request: Request, session: AsyncSession = DbSession, principal: Principal = Scim
    ) -> Response:
        ctx = context(request, principal)
        obj = await ops.create(session, ctx, await read_body(request))
        rendered = await service.render(session, ctx, obj, _projection(request, rtype))
        return resource_response(rendered, obj, 201)

    async def replace_resource(
        object_id: str, request: Request, session: AsyncSession = DbSession, principal: Principal = Scim
    ) -> Response:
        ctx = context(request, principal)
        body = await read_body(request)
        obj = await ops.replace(session, ctx, object_id, body, _if_match(request))
        return resource_response(await service.render(session, ctx, obj, _projection(request, rtype)), obj)

    async def patch_resource(
        object_id: str, request: Request, session: AsyncSession = DbSession, principal: Principal = Scim
    ) -> Response:
        ctx = context(request, principal)
        body = await read_body(request)
        obj, members_changed = await ops.patch(session, ctx, object_id, body, _if_match(request))
        if members_changed:  # no member list in the answer: a one-member change stays O(1)
            return Response(status_code=204, headers={"ETag": etag(obj)})
        return resource_response(await service.render(session, ctx, obj, _projection(request, rtype)), obj)

    async def delete_resource(
        object_id: str, request: Request, session: AsyncSession = DbSession, principal: Principal = Scim
    ) -> Response:
        await ops.delete(session, context(request, principal), object_id, _if_match(request))
        return Response(status_code=204)

    path = rtype.endpoint
    one = f"{path}/{{object_id}}"
    routes: list[tuple[str, Any, str, str]] = [
        (path, list_resources, "GET", f"List {noun}s (filter, sortBy, startIndex, count, attributes)"),
        (f"{path}/.search", search_resources, "POST", f"Search {noun}s"),
        (one, get_resource, "GET", f"Get a {noun}"),
        (path, create_resource, "POST", f"Create a {noun}"),
        (one, replace_resource, "PUT", f"Replace a {noun}"),
        (one, patch_resource, "PATCH", f"Patch a {noun}"),
        (one, delete_resource, "DELETE", f"Delete a {noun}"),
    ]
    for route_path, endpoint, method, summary in routes:
        name = f"{endpoint.__name__.replace('resources', noun + 's').replace('resource', noun)}"
        router.add_api_route(route_path, endpoint, methods=[method], summary=summary, name=name)


for resource_ops in service.RESOURCE_OPS:
    resource_routes(resource_ops)


@router.post("/Bulk", summary="Bulk operations with bulkId references and failOnErrors")
async def bulk(request: Request, principal: Principal = Scim) -> Response:
    body = await read_body(request)
    return scim_json(await service.bulk(request.app.state.db, context(request, principal), body))
