"""graph.fast_reads answers the hot Graph reads outside FastAPI's routing: every request of the table below is
sent to one server with the fast path off (routed) and on, and the two answers must be the same — status,
body byte for byte (for errors: the same JSON but for the per-request date and request id), and headers —
while ``trustplane_graph_fast_reads_total`` shows which requests the fast path answered itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.server import TenantHandle, TestServer
from trustplane.auth.tokens import issuer_for
from trustplane.core.observability import REGISTRY

SHAPES = (
    "/v1.0/users/{user_id}",
    "/v1.0/users",
    "/v1.0/groups/{group_id}",
    "/v1.0/users/{object_id}/getMemberGroups",
)
COMPARED_HEADERS = ("content-type", "content-length", "www-authenticate", "location")


def answered() -> float:
    """How many requests the fast path has answered itself, all shapes together."""
    return sum(
        REGISTRY.get_sample_value("trustplane_graph_fast_reads_total", {"route": shape}) or 0.0
        for shape in SHAPES
    )


def requests_counted(route: str, status: int) -> float:
    labels = {"method": "GET", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("trustplane_http_requests_total", labels) or 0.0


def normalised(response: httpx.Response, sent: dict[str, str]) -> bytes | list[Any]:
    """The body as it must be equal on both paths: bytes for a success; for a Graph error the JSON with its
    per-request values (date, request ids) checked and taken out, key order kept."""
    if response.status_code < 400:
        return response.content
    body = json.loads(response.content)
    inner = body["error"].pop("innerError")
    assert response.headers.get_list("request-id") == [inner["request-id"]]
    assert inner["client-request-id"] == sent.get("client-request-id", inner["request-id"])
    assert set(inner) == {"date", "request-id", "client-request-id"}
    return [(k, list(v.items()) if isinstance(v, dict) else v) for k, v in body.items()]


@pytest.fixture
def fast_path_switch(server: TestServer) -> Iterator[Callable[[bool], None]]:
    settings = server.app.state.settings

    def switch(on: bool) -> None:
        settings.graph_fast_reads = on

    try:
        yield switch
    finally:
        settings.graph_fast_reads = True


@pytest.fixture
def compare(server: TestServer, fast_path_switch: Callable[[bool], None]) -> Callable[..., httpx.Response]:
    def run(
        path: str,
        *,
        fast: bool,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        method = "GET" if body is None else "POST"
        with httpx.Client(base_url=server.url, headers=sent, timeout=30) as c:
            fast_path_switch(False)
            routed = c.request(method, path, content=body)
            fast_path_switch(True)
            before = answered()
            quick = c.request(method, path, content=body)
            after = answered()
        what = f"{method} {path} {body!r:.80}"
        assert after - before == (1 if fast else 0), (
            f"{what}: fast path answered {after - before}, not {fast}"
        )
        assert quick.status_code == routed.status_code, what
        assert normalised(quick, sent) == normalised(routed, sent), what
        for name in COMPARED_HEADERS:
            assert quick.headers.get(name) == routed.headers.get(name), (what, name)
        assert quick.headers["request-id"] and quick.headers["request-id"] != routed.headers["request-id"]
        return quick

    return run


def make_user(c: httpx.Client, domain: str, alias: str) -> dict[str, Any]:
    response = c.post(
        "/v1.0/users",
        json={
            "accountEnabled": True,
            "displayName": alias.title(),
            "mailNickname": alias.replace(".", ""),
            "userPrincipalName": f"{alias}@{domain}",
            "passwordProfile": {"password": "Correct-Horse-42"},
            "businessPhones": ["+1 555 0100"],
            "jobTitle": "Analyst",
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_group(c: httpx.Client, name: str) -> dict[str, Any]:
    response = c.post(
        "/v1.0/groups",
        json={"displayName": name, "mailNickname": name, "mailEnabled": False, "securityEnabled": True},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def upn_filter(upn: str, extra: str = "") -> str:
    return f"/v1.0/users?$filter=userPrincipalName eq '{upn}'{extra}"


def test_reads_answer_the_same_on_both_paths(
    tenant: TenantHandle, server: TestServer, compare: Callable[..., httpx.Response]
) -> None:
    other = server.tenant()
    with tenant.client() as c, other.client() as o:
        user = make_user(c, tenant.domain, "fast.reader")
        group = make_group(c, "fastreaders")
        theirs = make_user(o, other.domain, "their.user")
        their_group = make_group(o, "theirgroup")
    uid, upn, gid = user["id"], user["userPrincipalName"], group["id"]
    token = tenant.token()
    unknown = "5c3a3f1e-0d5b-4f59-9d43-2f3b1f0a9c11"
    answered_fast = [
        f"/v1.0/users/{uid}",
        f"/v1.0/users/{uid}?$select=displayName,jobTitle",
        f"/v1.0/users/{uid}?$select=id",
        f"/v1.0/users/{uid}?api-version=1&x=%20",  # not an OData option: ignored by both
        upn_filter(upn),
        upn_filter(upn.upper()),
        upn_filter(upn, "&$select=displayName,userPrincipalName"),
        upn_filter(theirs["userPrincipalName"]),  # another tenant's user: an empty list
        upn_filter(f"nobody@{tenant.domain}"),
        f"/v1.0/groups/{gid}",
        f"/v1.0/groups/{gid}?$select=displayName",
    ]
    routed = [
        f"/v1.0/users/{uid.upper()}",  # not the stored id
        f"/v1.0/users/{uid}?$select=bogus",
        f"/v1.0/users/{uid}?$select=id&$select=mail",
        f"/v1.0/users/{uid}?$top=5",
        f"/v1.0/users/{uid}?$expand=manager",
        f"/v1.0/users/{uid}?$select=%00",
        f"/v1.0/users/{unknown}",
        f"/v1.0/users/{theirs['id']}",  # another tenant's user: 404 exactly as routed
        f"/v1.0/users/{their_group['id']}",  # a group's id as a user
        f"/v1.0/users/{upn}",  # by userPrincipalName in the path: the normal route
        "/v1.0/users/not-a-guid",
        f"/v1.0/users/{uid}/",
        f"/v1.0/users/{uid}/memberOf",
        "/v1.0/users",
        upn_filter(upn, "&$top=1"),
        upn_filter(upn, "&$select=bogus"),
        upn_filter(upn, "&$filter=displayName eq 'x'"),
        f"/v1.0/users?$filter=displayName eq '{user['displayName']}'",
        "/v1.0/users?$filter=userPrincipalName eq",
        "/v1.0/users?$filter=userPrincipalName eq 'a%00b'",
        f"/v1.0/groups/{unknown}",
        f"/v1.0/groups/{their_group['id']}",
        f"/v1.0/groups/{uid}",
        f"/v1.0/groups/{gid}?$select=nope",
    ]
    for path in answered_fast:
        assert compare(path, fast=True, token=token).status_code == 200, path
    statuses = {path: compare(path, fast=False, token=token).status_code for path in routed}
    assert statuses[f"/v1.0/users/{theirs['id']}"] == 404
    assert statuses[f"/v1.0/groups/{their_group['id']}"] == 404
    assert statuses[f"/v1.0/users/{uid}?$select=bogus"] == 400
    assert statuses[f"/v1.0/users/{upn}"] == 200
    assert statuses[upn_filter(upn, "&$top=1")] == 200
    # The client's request id is echoed in errors on both paths.
    compare(f"/v1.0/users/{unknown}", fast=False, token=token, headers={"client-request-id": "c-42"})


def test_get_member_groups_answers_the_same_on_both_paths(
    tenant: TenantHandle, server: TestServer, compare: Callable[..., httpx.Response]
) -> None:
    """The one POST served fast: its body is read by the layer and replayed to the normal route whenever
    the layer declines (a bad body, an unknown user, a body over the limit, a caller it cannot vouch for)."""
    other = server.tenant()
    with tenant.client() as c, other.client() as o:
        user = make_user(c, tenant.domain, "deep.member")
        chain = [make_group(c, f"level{n}") for n in range(3)]
        for inner, outer in zip([user, *chain], chain, strict=False):
            ref = {"@odata.id": f"{server.url}/v1.0/directoryObjects/{inner['id']}"}
            assert c.post(f"/v1.0/groups/{outer['id']}/members/$ref", json=ref).status_code == 204
        theirs = make_user(o, other.domain, "their.member")
    token = tenant.token()
    path = f"/v1.0/users/{user['id']}/getMemberGroups"
    answer = compare(path, fast=True, token=token, body=b'{"securityEnabledOnly": true}')
    assert sorted(answer.json()["value"]) == sorted(g["id"] for g in chain)  # transitive, 3 deep
    for body in (
        b'{"securityEnabledOnly": false}',
        b'{"@odata.type": "x", "securityEnabledOnly": true}',
        b'  {"securityEnabledOnly":true}  ',
    ):
        assert compare(path, fast=True, token=token, body=body).status_code == 200, body
    unknown = "5c3a3f1e-0d5b-4f59-9d43-2f3b1f0a9c11"
    big = b'{"securityEnabledOnly": true, "pad": "' + b"x" * 1_100_000 + b'"}'
    routed = {
        (path, b""): 400,
        (path, b"{"): 400,
        (path, b"[]"): 400,
        (path, b"{}"): 400,
        (path, b'{"securityEnabledOnly": "yes"}'): 400,
        (path, b'{"securityEnabledOnly": true, "extra": 1}'): 400,
        (path, rb'{"securityEnabledOnly": true, "x": "a\u0000b"}'): 400,
        (path, big): 413,
        (f"/v1.0/users/{unknown}/getMemberGroups", b'{"securityEnabledOnly": true}'): 404,
        (f"/v1.0/users/{theirs['id']}/getMemberGroups", b'{"securityEnabledOnly": true}'): 404,
        (f"/v1.0/users/{chain[0]['id']}/getMemberGroups", b'{"securityEnabledOnly": true}'): 404,
        (f"{path}?x=1", b'{"securityEnabledOnly": true}'): 200,
    }
    for (where, body), status in routed.items():
        assert compare(where, fast=False, token=token, body=body).status_code == status, (where, body[:40])
    # Callers it cannot vouch for, and the route's own permission names.
    ask = b'{"securityEnabledOnly": true}'
    assert compare(path, fast=False, body=ask).status_code == 401
    assert (
        compare(path, fast=True, token=tenant.app("GroupMember.Read.All").token(), body=ask).status_code
        == 200
    )
    assert compare(path, fast=False, token=tenant.app("User.Read.All").token(), body=ask).status_code == 403
    assert (
        compare(path, fast=False, token=tenant.api_token("Directory.Read.All"), body=ask).status_code == 200
    )


def test_callers_the_fast_path_cannot_vouch_for_get_the_normal_routes_answer(
    tenant: TenantHandle, server: TestServer, compare: Callable[..., httpx.Response]
) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "guarded.user")
        group = make_group(c, "guarded")
    paths = [
        f"/v1.0/users/{user['id']}",
        upn_filter(user["userPrincipalName"]),
        f"/v1.0/groups/{group['id']}",
    ]
    groups_only = tenant.app("Group.Read.All").token()
    users_only = tenant.app("User.Read.All").token()
    key = signing_key(server, tenant.tenant_id)
    claims = dict(jwt.decode(tenant.token(), key, algorithms=["RS256"]).claims)
    header = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
    now = int(time.time())
    forged = {
        "expired": {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
        "wrong audience": {**claims, "aud": "https://example.com"},
        "wrong issuer": {**claims, "iss": issuer_for("http://elsewhere.example", tenant.tenant_id)},
        "no roles": {**claims, "roles": []},
    }
    for path in paths:
        assert compare(path, fast=False).status_code == 401  # no Authorization header
        assert (
            compare(path, fast=False, headers={"Authorization": "Basic YWxhZGRpbjpvcGVu"}).status_code == 401
        )
        assert compare(path, fast=False, token="not.a.jwt").status_code == 401
        for what, forged_claims in forged.items():
            status = compare(
                path, fast=False, token=jwt.encode(header, forged_claims, key, algorithms=["RS256"])
            ).status_code
            assert status == (403 if what == "no roles" else 401), (path, what)
        # An API token is verified by the normal route (it reads the token's row).
        api_token = tenant.api_token("Directory.Read.All")
        assert compare(path, fast=False, token=api_token).status_code == 200
    # The permission of each route, with the same names.
    assert compare(paths[0], fast=False, token=groups_only).status_code == 403
    assert compare(paths[1], fast=False, token=groups_only).status_code == 403
    assert compare(paths[2], fast=True, token=groups_only).status_code == 200
    assert compare(paths[0], fast=True, token=users_only).status_code == 200
    assert compare(paths[2], fast=False, token=users_only).status_code == 403
    # A lower-case scheme is accepted on both paths, as authenticate() accepts it.
    lower = {"Authorization": f"bearer {tenant.app('User.Read.All').token()}"}
    assert compare(paths[0], fast=True, headers=lower).status_code == 200


def signing_key(server: TestServer, tenant_id: str) -> RSAKey:
    async def load() -> RSAKey:
        async with server.db.session() as session:
            return await server.keys.active_key(session, tenant_id)

    return server.run(load())  # type: ignore[no-any-return]


def test_a_token_is_verified_in_full_by_the_normal_route_before_the_fast_path_answers_it(
    tenant: TenantHandle, server: TestServer
) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "first.call")
    token = tenant.app("User.Read.All").token()  # never presented yet
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        before = answered()
        assert c.get(f"/v1.0/users/{user['id']}").status_code == 200
        assert answered() == before  # verified (signature, claims) by the normal route
        assert c.get(f"/v1.0/users/{user['id']}").status_code == 200
        assert answered() == before + 1  # from the verified-token cache


def test_changes_and_deletes_are_seen_at_once_by_the_fast_path(
    tenant: TenantHandle, compare: Callable[..., httpx.Response]
) -> None:
    token = tenant.token()
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "changing.user")
        group = make_group(c, "changing")
        path, by_upn = f"/v1.0/users/{user['id']}", upn_filter(user["userPrincipalName"])
        compare(path, fast=True, token=token)  # read twice: cached on PostgreSQL
        assert c.patch(path, json={"jobTitle": "Director"}).status_code == 204
        assert compare(path, fast=True, token=token).json()["jobTitle"] == "Director"
        assert c.patch(f"/v1.0/groups/{group['id']}", json={"description": "renamed"}).status_code == 204
        assert (
            compare(f"/v1.0/groups/{group['id']}", fast=True, token=token).json()["description"] == "renamed"
        )
        assert c.delete(path).status_code == 204
        assert c.delete(f"/v1.0/groups/{group['id']}").status_code == 204
    assert compare(path, fast=False, token=token).status_code == 404
    assert compare(by_upn, fast=True, token=token).json()["value"] == []
    assert compare(f"/v1.0/groups/{group['id']}", fast=False, token=token).status_code == 404


def test_a_delete_by_another_process_reaches_the_fast_path_through_notify(
    tenant: TenantHandle, server: TestServer, compare: Callable[..., httpx.Response]
) -> None:
    if server.backend != "postgresql":
        pytest.skip("cross-process invalidation is PostgreSQL's (no row cache on SQLite)")
    token = tenant.token()
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "raw.delete")
    path = f"/v1.0/users/{user['id']}"
    compare(path, fast=True, token=token)  # now cached
    engine = sa.create_engine(server.database_url.replace("postgresql+asyncpg://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM directory_values WHERE object_id = :id"), {"id": user["id"]})
            conn.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": user["id"]})
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 5
    while httpx.get(server.url + path, headers=headers).status_code != 404:
        assert time.monotonic() < deadline, "the fast path kept answering a deleted user"
        time.sleep(0.02)
    assert compare(path, fast=False, token=token).status_code == 404


def test_fast_answers_are_counted_in_metrics_under_the_routes_template(
    tenant: TenantHandle, server: TestServer, fast_path_switch: Callable[[bool], None]
) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "counted.user")
        for on in (False, True):
            fast_path_switch(on)
            before, fast_before = requests_counted("/v1.0/users/{user_id}", 200), answered()
            response = c.get(f"/v1.0/users/{user['id']}")
            assert response.status_code == 200 and response.headers["request-id"]
            assert requests_counted("/v1.0/users/{user_id}", 200) == before + 1
            assert answered() == fast_before + (1 if on else 0)


def _route_of(endpoint: Any) -> Any:
    from trustplane.graph import api

    return next(r for r in api.router.routes if getattr(r, "endpoint", None) is endpoint)


def test_a_shape_is_served_only_while_its_route_has_the_expected_endpoint_and_dependencies(
    tmp_path: Any,
) -> None:
    from fastapi import Depends

    from trustplane.app import create_app
    from trustplane.auth import permissions as perm
    from trustplane.graph import api
    from trustplane.graph.fast_reads import _learn, _Learnt
    from trustplane.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, log_level="warning"))
    learnt = _learn(app, "user", _route_of(api.get_user))
    assert isinstance(learnt, _Learnt) and learnt.permissions == perm.READ_USERS
    group = _learn(app, "group", _route_of(api.get_group))
    assert isinstance(group, _Learnt) and group.permissions == perm.READ_GROUPS
    assert isinstance(_learn(app, "user", _route_of(api.list_users)), str)  # routed elsewhere

    async def rate_limit() -> None:
        return None

    app.router.dependencies.append(Depends(rate_limit))  # e.g. a limit added app-wide later
    assert "dependencies changed" in str(_learn(app, "user", _route_of(api.get_user)))
