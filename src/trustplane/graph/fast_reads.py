"""The Graph face's hot reads without FastAPI's routing and dependency machinery: a pure ASGI layer in front
of the app that answers, when it can, exactly what the normal route would, and hands everything else to it.

Served here: ``GET /v1.0/users/{id}`` (an id that is a GUID), ``GET /v1.0/users?$filter=userPrincipalName eq
'…'`` (alone or with ``$select``: the lookup by key ``graph.query.equality_lookup`` recognises) and ``GET
/v1.0/groups/{id}``, and ``POST /v1.0/users/{id}/getMemberGroups`` (its body read here, within
``max_body_bytes``, and replayed to the normal route whenever this layer declines). FastAPI's dependency
resolution and route matching cost ~95 us of the ~265-330 us a warm read took (docs/benchmarks.md), more
than everything TrustPlane itself does for it.

What keeps the two paths equal: this layer answers only the success case, with the normal route's own code
for every step: the verified-token cache of ``auth.tokens`` (``verified_from_memory``: the same strict
checks, from memory), the permission names read from the route's own ``requires(...)``, the
``directory.service`` reads through the row cache, ``graph.api.entity_body`` / ``graph.query`` for
``$select``, ``@odata.context`` and rendering. Whenever it cannot answer 200 by those (no token, a token not
verified before or whose key is due a re-check, an API token, a user's token, a missing permission, an id
that is not a GUID, an unknown or other tenant's object, any other query option or a bad one, a NUL in the
URL, a ``root_path``) it answers nothing and passes the request on, so every error is the normal route's
own. A shape is served only after the app's router has routed one request of it to the expected endpoint
with the expected dependencies (see ``_learn``). The requests it answers are counted in ``/metrics`` under
the normal route's template (``scope["route"]``) by ``ObservabilityMiddleware``, which wraps this layer and
adds the ``request-id`` header as for any request; ``trustplane_graph_fast_reads_total`` counts them once
more, so an operator (and the tests) can see which path answered.
``TRUSTPLANE_GRAPH_FAST_READS=false`` turns it off.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson
import structlog
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trustplane.auth.deps import base_url
from trustplane.auth.permissions import Principal
from trustplane.auth.service import API_TOKEN_PREFIX
from trustplane.auth.tokens import verified_from_memory
from trustplane.core.bodies import parse_json_object
from trustplane.core.errors import DomainError
from trustplane.core.ids import is_uuid
from trustplane.core.observability import REGISTRY
from trustplane.directory import service
from trustplane.graph import api
from trustplane.graph.properties import GROUP, USER

log = structlog.get_logger("trustplane.graph.fast_reads")

ANSWERED = Counter(
    "trustplane_graph_fast_reads_total",
    "Graph reads answered by graph.fast_reads (also counted in trustplane_http_requests_total)",
    ["route"],
    registry=REGISTRY,
)

USERS = "/v1.0/users"
USER_PREFIX = "/v1.0/users/"
GROUP_PREFIX = "/v1.0/groups/"

MEMBER_GROUPS_SUFFIX = "/getMemberGroups"

# A handler answers the request (a body to send) or None: "not mine, let the normal route answer". It is
# given the request's body as read (b"" for a GET).
Handler = Callable[[Request, Principal, str, bytes], Awaitable[bytes | None]]


async def _user_by_id(request: Request, principal: Principal, user_id: str, _: bytes) -> bytes | None:
    db = request.app.state.db
    async with db.read_only() as session:
        user = await service.read_user(session, principal.tenant_id, user_id)
    return orjson.dumps(api.entity_body(request, USER, user, "users/$entity"))


async def _group_by_id(request: Request, principal: Principal, group_id: str, _: bytes) -> bytes | None:
    db = request.app.state.db
    async with db.read_only() as session:
        group = await service.get_group(session, principal.tenant_id, group_id)
        body = api.entity_body(request, GROUP, group, "groups/$entity")
    return orjson.dumps(body)


async def _user_by_upn(request: Request, principal: Principal, _: str, __: bytes) -> bytes | None:
    async with request.app.state.db.read_only() as session:
        body = await api.users_by_upn_lookup(request, session, principal.tenant_id)
    return orjson.dumps(body) if body is not None else None  # None: the general collection path


async def _member_groups(request: Request, principal: Principal, user_id: str, raw: bytes) -> bytes | None:
    body = parse_json_object(raw)  # a bad body raises: the normal route answers it, in Graph's dialect
    async with request.app.state.db.read_only() as session:
        answer = await api.member_groups_answer(request, session, principal.tenant_id, "users", user_id, body)
    return orjson.dumps(answer)


def _bearer_jwt(scope: Scope) -> str | None:
    """The credential of ``Authorization: Bearer <JWT>`` parsed as ``auth.deps.authenticate`` parses it;
    None for anything else (no header, another scheme, an API token), which the normal route handles."""
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or credential.startswith(API_TOKEN_PREFIX + "_"):
        return None
    return credential


class _Shape(NamedTuple):
    handler: Handler
    endpoint: Callable[..., Any]  # the normal route's endpoint


SHAPES = {
    "user": _Shape(_user_by_id, api.get_user),
    "users": _Shape(_user_by_upn, api.list_users),
    "group": _Shape(_group_by_id, api.get_group),
    "member_groups": _Shape(_member_groups, api.MEMBER_GROUPS_ENDPOINTS["users"]),
}
POSTS = frozenset({"member_groups"})  # shapes whose body this layer reads (and replays when it declines)

# What the normal routes depend on, all of which this layer does itself: the app's global dependency, and
# each route's permission check and read-only session. Anything else (a rate limit, say) added to the app,
# the Graph router or a route switches the shape off here rather than being skipped.
APP_DEPENDENCIES = ("refuse_nul_in_url",)
ROUTE_DEPENDENCIES = ("requires.<locals>.check", "read_only_session")


class _Learnt(NamedTuple):
    route: Any  # the normal route (an APIRoute)
    permissions: tuple[str, ...]  # its requires(...), read from the route itself
    answered: Any  # its series of ANSWERED


def _qualnames(dependencies: list[Any]) -> tuple[str, ...]:
    return tuple(getattr(d.call, "__qualname__", "?") for d in dependencies)


def _learn(fastapi_app: Any, shape: str, route: Any) -> _Learnt | str:
    """What serving ``shape`` here needs to know of its normal route, or why it cannot be served here."""
    if getattr(route, "endpoint", None) is not SHAPES[shape].endpoint:
        return f"routed to {getattr(route, 'path', route)!r}"
    dependant = route.dependant
    nested = [sub for d in dependant.dependencies for sub in d.dependencies]
    app_deps = tuple(getattr(d.dependency, "__qualname__", "?") for d in fastapi_app.router.dependencies)
    if (
        app_deps != APP_DEPENDENCIES
        or api.router.dependencies
        or route.dependencies
        or _qualnames(dependant.dependencies) != ROUTE_DEPENDENCIES
        or nested
    ):
        return f"dependencies changed: app {app_deps}, route {_qualnames(dependant.dependencies)}"
    permissions = inspect.getclosurevars(dependant.dependencies[0].call).nonlocals.get("permissions")
    if not isinstance(permissions, tuple) or not permissions:
        return "the route's permissions are not readable"
    return _Learnt(route, permissions, ANSWERED.labels(route.path))


class GraphFastReads:
    """The pure ASGI layer (see the module docstring). Sits inside ``ObservabilityMiddleware``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Each shape's route as the app's own router chose it for a request of that shape, learnt from the
        # first one (every shape's first request is routed): a shape is served here only once the router
        # has shown that its path goes to the expected endpoint with the expected dependencies, and never
        # if not (a route mounted before the Graph router, a dependency added).
        self._learnt: dict[str, _Learnt] = {}
        self._off: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape, key = _shape_of(scope) if scope["type"] == "http" else ("", "")
        if not shape:
            await self.app(scope, receive, send)
            return
        learnt = self._learnt.get(shape)
        if learnt is not None and scope["app"].state.settings.graph_fast_reads:
            raw = b""
            if shape in POSTS:
                receive, raw_or_none = await _buffered(scope, receive)
                if raw_or_none is None:  # too large, or the client went away: the normal route's case
                    await self.app(scope, receive, send)
                    return
                raw = raw_or_none
            body = await self._answer(scope, receive, learnt, shape, key, raw)
            if body is not None:
                scope["route"] = learnt.route  # counted in /metrics under the normal route's template
                learnt.answered.inc()
                await Response(body, media_type="application/json")(scope, receive, send)
                return
        await self.app(scope, receive, send)
        route = scope.get("route")
        if learnt is None and route is not None and shape not in self._off:  # no route: a 404, learn later
            found = _learn(scope["app"], shape, route)
            if isinstance(found, _Learnt):
                self._learnt[shape] = found
            else:
                self._off.add(shape)
                log.warning("graph_fast_read_off", shape=shape, reason=found)

    async def _answer(
        self, scope: Scope, receive: Receive, learnt: _Learnt, shape: str, key: str, raw: bytes
    ) -> bytes | None:
        credential = _bearer_jwt(scope)
        if credential is None:
            return None
        request = Request(scope, receive)
        state = scope["app"].state
        principal = verified_from_memory(
            state.keys, credential, issuer_base=base_url(request), audiences=state.settings.audiences
        )
        if principal is None or not principal.has_any(learnt.permissions):
            return None
        try:
            return await SHAPES[shape].handler(request, principal, key, raw)
        except DomainError:
            return None  # not found, a bad query option, …: the normal route answers it in Graph's dialect


async def _buffered(scope: Scope, receive: Receive) -> tuple[Receive, bytes | None]:
    """The request's body read whole (None when over ``max_body_bytes`` or the client left), and a receive
    that replays every message read, then goes on with the real one — for the normal route if need be."""
    limit: int = scope["app"].state.settings.max_body_bytes
    messages: list[Message] = []
    replay = _replaying(messages, receive)
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            return replay, None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return replay, None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return replay, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return replay, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replay


def _shape_of(scope: Scope) -> tuple[str, str]:
    """Which served shape a request is, with the id from its path; ("", "") for any other request, and for
    an app under a root path, a URL carrying NUL (``app.refuse_nul_in_url``'s case), a sub-resource or an id
    that is not a GUID (a userPrincipalName in the path): those the normal route answers."""
    if scope.get("root_path"):
        return "", ""
    path: str = scope["path"]
    query: bytes = scope["query_string"]
    if b"%00" in query or b"\x00" in query:
        return "", ""
    if scope["method"] == "POST":
        if query or not path.startswith(USER_PREFIX) or not path.endswith(MEMBER_GROUPS_SUFFIX):
            return "", ""
        key = path[len(USER_PREFIX) : -len(MEMBER_GROUPS_SUFFIX)]
        return ("member_groups", key) if is_uuid(key) else ("", "")
    if scope["method"] != "GET":
        return "", ""
    if path == USERS:
        return "users", ""
    if path.startswith(USER_PREFIX):
        shape, key = "user", path[len(USER_PREFIX) :]
    elif path.startswith(GROUP_PREFIX):
        shape, key = "group", path[len(GROUP_PREFIX) :]
    else:
        return "", ""
    if "/" in key or not is_uuid(key):
        return "", ""
    return shape, key
