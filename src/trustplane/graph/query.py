"""OData query options of a Graph collection request, applied to a tenant-scoped statement: one place for
$filter / $search / $orderby / $select / $top / $count / $skiptoken, the count, the page and nextLink."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import base_url
from trustplane.core.errors import BadRequest
from trustplane.core.pagination import SortKey, fetch_page
from trustplane.graph import odata
from trustplane.graph.properties import EntityType

KNOWN_OPTIONS = {"$filter", "$select", "$top", "$orderby", "$count", "$search", "$skiptoken"}
UNSUPPORTED_OPTIONS = {"$expand", "$skip", "$format", "$apply", "$compute", "$levels", "$deltatoken"}


def bad_query(message: str) -> BadRequest:
    return BadRequest(message, code="Request_BadRequest")


def eventual_consistency(request: Request) -> bool:
    return request.headers.get("consistencylevel", "").lower() == "eventual"


def check_options(request: Request, allowed: set[str] = KNOWN_OPTIONS) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith("$"):
            continue
        lowered = key.lower()
        if lowered in UNSUPPORTED_OPTIONS or (lowered.startswith("$") and lowered not in KNOWN_OPTIONS):
            raise bad_query(f"The query option '{key}' is not supported on this resource.")
        if lowered not in allowed:
            raise bad_query(f"The query option '{key}' is not supported on this resource.")
        if lowered in options:
            raise bad_query(f"The query option '{key}' was specified more than once.")
        options[lowered] = value
    return options


def parse_select(options: dict[str, str], allowed: list[str]) -> list[str] | None:
    if "$select" not in options:
        return None
    try:
        return odata.parse_select(options["$select"], allowed)
    except odata.ODataQueryError as exc:
        raise bad_query(exc.message) from exc


def parse_top(options: dict[str, str], default: int, maximum: int) -> int:
    if "$top" not in options:
        return default
    try:
        return odata.parse_top(options["$top"], maximum)
    except odata.ODataQueryError as exc:
        raise bad_query(exc.message) from exc


def parse_count(request: Request, options: dict[str, str]) -> bool:
    raw = options.get("$count")
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise bad_query("$count must be true or false.")
    wanted = raw.lower() == "true"
    if wanted and not eventual_consistency(request):
        raise bad_query(
            "$count is only supported on directory objects with the header 'ConsistencyLevel: eventual'."
        )
    return wanted


def sort_keys(etype: EntityType, options: dict[str, str]) -> list[SortKey]:
    id_key = SortKey(etype.model.id, False, "string")
    orderby = options.get("$orderby", etype.default_order)
    if orderby is None:
        return [id_key]
    try:
        order = odata.parse_orderby(orderby, etype.fields)
    except odata.ODataQueryError as exc:
        raise bad_query(exc.message) from exc
    keys: list[SortKey] = []
    for item in order:
        field = item.field
        if field.name == "id":
            keys.append(SortKey(etype.model.id, item.descending, "string"))
            continue
        if field.type == "string":
            # Never NULL and case-insensitive, so keyset comparisons are total and match $filter's semantics.
            expr = func.coalesce(func.lower(field.column), "")
            keys.append(SortKey(expr, item.descending, "string"))
        else:
            keys.append(SortKey(field.column, item.descending, field.type))
    if not any(k.expression is etype.model.id for k in keys):
        keys.append(id_key)
    return keys


def apply_filters(
    request: Request, stmt: Select[Any], etype: EntityType, options: dict[str, str]
) -> Select[Any]:
    if "$filter" in options:
        try:
            stmt = stmt.where(odata.compile_filter(options["$filter"], etype.fields))
        except odata.ODataQueryError as exc:
            raise bad_query(exc.message) from exc
    if "$search" in options:
        if not eventual_consistency(request):
            raise bad_query("$search is only supported with the header 'ConsistencyLevel: eventual'.")
        try:
            stmt = stmt.where(odata.compile_search(options["$search"], etype.fields))
        except odata.ODataQueryError as exc:
            raise bad_query(exc.message) from exc
    return stmt


def equality_lookup(request: Request, etype: EntityType, wire: str) -> tuple[str, list[str] | None] | None:
    """``(value, $select)`` when the request's query is exactly ``$filter=<wire> eq '<string>'`` (plus perhaps
    ``$select``): the lookup by key that Graph clients make all the time, which a caller can answer by that
    key (same case-insensitive comparison, at most one row, so no paging) instead of compiling a query.
    None for anything else, which then takes the general path and its errors."""
    if not request.scope["query_string"]:
        return None
    options = check_options(request)
    if "$filter" not in options or not options.keys() <= {"$filter", "$select"}:
        return None
    try:
        node = odata.parse_filter(options["$filter"])
    except odata.ODataQueryError:
        return None
    if not (
        isinstance(node, odata.Comparison)
        and node.op == "eq"
        and isinstance(node.target, odata.Property)
        and node.target.name.lower() == wire.lower()
        and node.value.kind == "string"
        and isinstance(node.value.value, str)
    ):
        return None
    return node.value.value, parse_select(options, list(etype.by_wire))


def context_url(request: Request, fragment: str, select: list[str] | None = None) -> str:
    suffix = f"({','.join(select)})" if select else ""
    return f"{base_url(request)}/v1.0/$metadata#{fragment}{suffix}"


def next_link(request: Request, token: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k.lower() != "$skiptoken"]
    params.append(("$skiptoken", token))
    return f"{base_url(request)}{request.url.path}?{urlencode(params, safe='$,()/:')}"


async def count_of(session: AsyncSession, stmt: Select[Any]) -> int:
    return int(
        (await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one()
    )


async def list_collection(
    request: Request,
    session: AsyncSession,
    etype: EntityType,
    base: Select[Any],
    context_fragment: str,
) -> dict[str, Any]:
    """A Graph collection page of ``etype`` rows selected by ``base`` (already tenant-scoped)."""
    settings = request.app.state.settings
    options = check_options(request)
    select_ = parse_select(options, list(etype.by_wire))
    top = parse_top(options, settings.default_page_size, settings.max_page_size)
    want_count = parse_count(request, options)
    keys = sort_keys(etype, options)
    stmt = apply_filters(request, base, etype, options)
    body: dict[str, Any] = {"@odata.context": context_url(request, context_fragment, select_)}
    if want_count:
        body["@odata.count"] = await count_of(session, stmt)
    page = await fetch_page(session, stmt, keys, limit=top, token=options.get("$skiptoken"))
    if page.next_token:
        body["@odata.nextLink"] = next_link(request, page.next_token)
    body["value"] = [etype.render(row, select_) for row in page.rows]
    return body


async def count_collection(
    request: Request, session: AsyncSession, etype: EntityType, base: Select[Any]
) -> int:
    """``/$count``: a plain number; Graph requires eventual consistency for it on directory objects."""
    if not eventual_consistency(request):
        raise bad_query("Count is only supported with the header 'ConsistencyLevel: eventual'.")
    options = check_options(request, {"$filter", "$search"})
    return await count_of(session, apply_filters(request, base, etype, options))


def json_response_body(body: Any) -> bytes:
    return orjson.dumps(body)
