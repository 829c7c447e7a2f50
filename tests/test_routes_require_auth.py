"""Every route in the OpenAPI document refuses a caller without a valid credential (401, its face's errors,
``WWW-Authenticate``) and a caller without the route's permission (403), except the few public routes in
``trustplane.app.PUBLIC_ROUTES``. The routes are enumerated from the OpenAPI document, so a new route is
covered the day it is added — and a new public route fails here until it is listed there on purpose."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.server import TenantHandle, TestServer
from trustplane.app import PUBLIC_ROUTES

# The routes that exist so a caller can get a token (token endpoint, JWKS, discovery) and the liveness probe.
EXPECTED_PUBLIC = {
    "/healthz",
    "/{tenant}/oauth2/v2.0/token",
    "/{tenant}/discovery/v2.0/keys",
    "/{tenant}/v2.0/.well-known/openid-configuration",
    "/api/v1/discovery/upload/{upload_id}",  # MCAS's pre-signed upload URL: its secret is the credential
    # The authorization server: each route authenticates what it needs itself (client authentication, a
    # bearer token for userinfo, the browser session and a CSRF token for consent and logout).
    "/{tenant}/oauth2/v2.0/authorize",
    "/{tenant}/oauth2/v2.0/authorize/consent",
    "/{tenant}/oauth2/v2.0/revoke",
    "/{tenant}/oauth2/v2.0/introspect",
    "/{tenant}/oauth2/v2.0/logout",
    "/{tenant}/openid/userinfo",
    # The sign-in pages: how a user authenticates (forms CSRF-protected by the pre-auth cookie; the
    # security-info pages check the browser session themselves and redirect to sign-in without one).
    "/{tenant}/signin",
    "/{tenant}/signin/mfa",
    "/{tenant}/signin/totp",
    "/{tenant}/signin/password",
    "/{tenant}/signin/blocked",
    "/{tenant}/signin/passkey",
    "/{tenant}/signin/passkey/options",
    "/{tenant}/signin/security-info",
    "/{tenant}/signin/security-info/passkey",
    "/{tenant}/signin/security-info/passkey/options",
    "/{tenant}/signin/security-info/recovery-codes",
    "/{tenant}/signin/static/{name}",
}
MIN_OPERATIONS = 20  # a floor so the enumeration can never silently test nothing
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def operations(server: TestServer) -> list[tuple[str, str]]:
    """Every (METHOD, path template) in the server's OpenAPI document."""
    ops = [
        (method.upper(), path)
        for path, item in server.app.openapi()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ]
    assert len(ops) >= MIN_OPERATIONS, f"the OpenAPI document lists only {len(ops)} operations: {ops}"
    return ops


def protected_operations(server: TestServer) -> list[tuple[str, str]]:
    ops = [op for op in operations(server) if op[1] not in PUBLIC_ROUTES]
    assert len(ops) >= MIN_OPERATIONS - len(PUBLIC_ROUTES)
    return ops


def concrete(path: str, tenant_id: str) -> str:
    """A plausible URL for a path template: the real tenant for ``{tenant}``, a fresh UUID for any id."""
    return re.sub(r"\{([^}]+)\}", lambda m: tenant_id if m.group(1) == "tenant" else str(uuid.uuid4()), path)


@pytest.fixture(scope="module")
def http(server: TestServer) -> Iterator[httpx.Client]:
    """One pooled client without credentials (a new httpx client per request costs more than the request)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def send(
    http: httpx.Client, method: str, path: str, tenant_id: str, headers: dict[str, str]
) -> httpx.Response:
    url = concrete(path, tenant_id)
    # A well-formed body on writes, so nothing but the credential can be the reason for the refusal.
    body: dict[str, Any] | None = {"displayName": "x"} if method in ("POST", "PATCH", "PUT") else None
    return http.request(method, url, headers=headers, json=body)


SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_face_error(response: httpx.Response, status: int, graph_code: str, what: str) -> None:
    """Each face refuses in its own dialect: SCIM under /scim/, Graph elsewhere."""
    if response.request.url.path.startswith("/api/"):  # the MCAS face: {"detail": "..."}
        assert set(response.json()) == {"detail"} and response.json()["detail"], what
    elif response.request.url.path.startswith("/scim/"):
        body = response.json()
        assert body["schemas"] == [SCIM_ERROR] and body["status"] == str(status), what
        assert body["detail"], what
    else:
        assert response.json()["error"]["code"] == graph_code, what
        assert response.json()["error"]["message"], what


def assert_unauthenticated(response: httpx.Response, what: str) -> None:
    assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
    assert_face_error(response, 401, "InvalidAuthenticationToken", what)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), what


def assert_forbidden(response: httpx.Response, what: str) -> None:
    assert response.status_code == 403, f"{what}: {response.status_code} {response.text}"
    assert_face_error(response, 403, "Authorization_RequestDenied", what)


def signed_token(server: TestServer, tenant: TenantHandle, **overrides: Any) -> str:
    """A token signed with the tenant's real key whose claims are a real token's, with ``overrides``."""

    async def key() -> RSAKey:
        async with server.db.session() as session:
            return await server.keys.active_key(session, tenant.tenant_id)

    signing_key: RSAKey = server.run(key())
    claims = dict(jwt.decode(tenant.token(), signing_key, algorithms=["RS256"]).claims)
    claims.update(overrides)
    header = {"alg": "RS256", "typ": "JWT", "kid": signing_key.kid}
    return jwt.encode(header, claims, signing_key, algorithms=["RS256"])


def test_public_routes_are_exactly_the_token_jwks_discovery_and_health_routes(server: TestServer) -> None:
    assert set(PUBLIC_ROUTES) == EXPECTED_PUBLIC
    documented = {path for _, path in operations(server)}
    assert EXPECTED_PUBLIC <= documented, "a public route is listed but no longer exists"


def test_public_routes_answer_without_a_token(server: TestServer, tenant: TenantHandle) -> None:
    base = server.url
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/{tenant.tenant_id}/discovery/v2.0/keys").status_code == 200
    assert httpx.get(f"{base}/{tenant.tenant_id}/v2.0/.well-known/openid-configuration").status_code == 200
    issued = httpx.post(
        f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert issued.status_code == 200


def test_every_non_public_route_answers_401_without_a_token(
    server: TestServer, http: httpx.Client, tenant: TenantHandle
) -> None:
    for method, path in protected_operations(server):
        response = send(http, method, path, tenant.tenant_id, {})
        assert_unauthenticated(response, f"{method} {path}")


@pytest.mark.parametrize(
    "credential",
    [
        "garbage",
        "Bearer",
        "Bearer two words",
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "Basic dXNlcjpwYXNz",
        "Token tpat_123_abc",
        "Bearer tpat_00000000000000000000000000000000_secret",
    ],
)
def test_malformed_or_garbage_credentials_answer_401_on_every_route(
    server: TestServer, http: httpx.Client, tenant: TenantHandle, credential: str
) -> None:
    for method, path in protected_operations(server):
        response = send(http, method, path, tenant.tenant_id, {"Authorization": credential})
        assert_unauthenticated(response, f"{credential!r} on {method} {path}")


def test_expired_token_answers_401_on_every_route(
    server: TestServer, http: httpx.Client, tenant: TenantHandle
) -> None:
    now = int(time.time())
    expired = signed_token(server, tenant, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    for method, path in protected_operations(server):
        response = send(http, method, path, tenant.tenant_id, {"Authorization": f"Bearer {expired}"})
        assert_unauthenticated(response, f"expired token on {method} {path}")


def test_access_token_under_the_token_scheme_answers_401_on_every_route(
    server: TestServer, http: httpx.Client, tenant: TenantHandle
) -> None:
    """``Authorization: Token`` is for API tokens only; a (valid) JWT presented that way is refused."""
    for method, path in protected_operations(server):
        response = send(http, method, path, tenant.tenant_id, {"Authorization": f"Token {tenant.token()}"})
        assert_unauthenticated(response, f"Token <jwt> on {method} {path}")


def test_token_of_an_app_without_permissions_is_refused_403_on_every_route(
    server: TestServer, http: httpx.Client, tenant: TenantHandle
) -> None:
    bare = tenant.app(name="no permissions")
    for method, path in protected_operations(server):
        response = send(http, method, path, tenant.tenant_id, {"Authorization": f"Bearer {bare.token()}"})
        assert_forbidden(response, f"{method} {path}")


def test_token_with_only_metrics_read_is_refused_403_everywhere_but_metrics(
    server: TestServer, http: httpx.Client, tenant: TenantHandle
) -> None:
    metrics_only = tenant.app("Metrics.Read", name="metrics scraper")
    headers = {"Authorization": f"Bearer {metrics_only.token()}"}
    for method, path in protected_operations(server):
        response = send(http, method, path, tenant.tenant_id, headers)
        if path == "/metrics":
            assert response.status_code == 200, response.text
        else:
            assert_forbidden(response, f"{method} {path}")


def test_api_token_without_the_permission_is_refused_403_on_every_route(
    server: TestServer, http: httpx.Client, tenant: TenantHandle
) -> None:
    token = tenant.api_token("Metrics.Read", name="metrics only")
    for method, path in protected_operations(server):
        if path == "/metrics":
            continue
        response = send(http, method, path, tenant.tenant_id, {"Authorization": f"Token {token}"})
        assert_forbidden(response, f"API token on {method} {path}")
