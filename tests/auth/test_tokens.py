"""Strict access-token verification, the client-credentials token endpoint, JWKS and discovery, signing-key
rotation, API tokens, and secrets at rest (argon2id hashes, never the raw secret)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

import trustplane.auth.keys as keys_module
from tests.support.server import TenantHandle, TestServer
from trustplane.auth.models import ApiToken, SigningKey
from trustplane.auth.service import create_api_token, revoke_api_token
from trustplane.auth.tokens import issuer_for
from trustplane.core.clock import utcnow
from trustplane.core.events import SYSTEM

GRAPH = "https://graph.microsoft.com"


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module", name="http")
def http_client(server: TestServer) -> Iterator[httpx.Client]:
    """One pooled client for the module (a new httpx client per request costs more than the request)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module", name="shared")
def shared_tenant(server: TestServer) -> TenantHandle:
    """One tenant for every test that leaves its signing keys alone, made once per backend (making a tenant
    and its app costs an argon2 hash)."""
    return server.tenant()


@functools.cache
def stranger_key() -> RSAKey:
    """An RSA key the server has never seen (generated once: key generation is slow)."""
    return RSAKey.generate_key(2048, private=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def active_key(server: TestServer, tenant_id: str) -> RSAKey:
    """The tenant's current private signing key, as the server stores it."""

    async def load() -> RSAKey:
        async with server.db.session() as session:
            return await server.keys.active_key(session, tenant_id)

    return server.run(load())


def real_claims(tenant: TenantHandle) -> dict[str, Any]:
    """The claims of a token from the real token endpoint, refreshed to be valid for ten minutes."""
    token = tenant.token()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    now = int(time.time())
    return {**claims, "iat": now, "nbf": now, "exp": now + 600}


def rs256(key: RSAKey, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode(
        {"alg": "RS256", "typ": "JWT", "kid": key.kid, **header}, claims, key, algorithms=["RS256"]
    )


def graph_get(
    http: httpx.Client, token: str, scheme: str = "Bearer", path: str = "/v1.0/users"
) -> httpx.Response:
    return http.get(path, headers={"Authorization": f"{scheme} {token}"})


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "www-authenticate" in response.headers


def token_request(
    http: httpx.Client, tenant_path: str, data: dict[str, str], **kwargs: Any
) -> httpx.Response:
    return http.post(f"/{tenant_path}/oauth2/v2.0/token", data=data, **kwargs)


def credentials(tenant: TenantHandle, **overrides: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": tenant.client_id,
        "client_secret": tenant.client_secret,
        "scope": f"{GRAPH}/.default",
        **overrides,
    }


# ---------------------------------------------------------------- strict verification

Forge = Callable[[TestServer, TenantHandle], str]


def forge_with_claims(**changes: Any) -> Forge:
    """Signed with the tenant's real key; only the named claims differ (None removes a claim)."""

    def forge(server: TestServer, tenant: TenantHandle) -> str:
        claims = real_claims(tenant)
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value(server, tenant) if callable(value) else value
        return rs256(active_key(server, tenant.tenant_id), claims)

    return forge


def alg_none(alg: str) -> Forge:
    def forge(server: TestServer, tenant: TenantHandle) -> str:
        header = {"alg": alg, "typ": "JWT", "kid": active_key(server, tenant.tenant_id).kid}
        return f"{segment(header)}.{segment(real_claims(tenant))}."

    return forge


def hs256_with_public_key(encoding: str) -> Forge:
    """The classic confusion: an HMAC token whose secret is the server's *public* key."""

    def forge(server: TestServer, tenant: TenantHandle) -> str:
        key = active_key(server, tenant.tenant_id)
        public = (
            key.as_pem(private=False)
            if encoding == "pem"
            else json.dumps(key.as_dict(private=False)).encode()
        )
        signing_input = (
            f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{segment(real_claims(tenant))}"
        )
        mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    return forge


def tampered_payload(server: TestServer, tenant: TenantHandle) -> str:
    """A genuine token whose payload was edited afterwards (more roles), signature kept."""
    header, payload, signature = tenant.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = [*claims["roles"], "AuditLog.Read.All"]
    return f"{header}.{segment(claims)}.{signature}"


def stripped_signature(server: TestServer, tenant: TenantHandle) -> str:
    header, payload, _ = tenant.token().split(".")
    return f"{header}.{payload}."


def unknown_kid(server: TestServer, tenant: TenantHandle) -> str:
    return rs256(stranger_key(), real_claims(tenant), kid=uuid.uuid4().hex)


def foreign_key_with_real_kid(server: TestServer, tenant: TenantHandle) -> str:
    return rs256(stranger_key(), real_claims(tenant), kid=active_key(server, tenant.tenant_id).kid)


def embedded_jwk(server: TestServer, tenant: TenantHandle) -> str:
    """The attacker's key rides in the header (``jwk``/``jku``), naming the real kid."""
    stranger = stranger_key()
    kid = active_key(server, tenant.tenant_id).kid
    extra = {"jwk": dict(stranger.as_dict(private=False)), "jku": "https://attacker.example/keys"}
    return rs256(stranger, real_claims(tenant), kid=kid, **extra)


def other_tenants_issuer(server: TestServer, tenant: TenantHandle) -> str:
    return issuer_for(server.url, str(uuid.uuid4()))


FORGERIES: dict[str, Forge] = {
    "alg-none": alg_none("none"),
    "alg-None": alg_none("None"),
    "hs256-signed-with-public-key-pem": hs256_with_public_key("pem"),
    "hs256-signed-with-public-jwk": hs256_with_public_key("jwk"),
    "tampered-payload": tampered_payload,
    "signature-stripped": stripped_signature,
    "unknown-kid": unknown_kid,
    "foreign-key-naming-the-real-kid": foreign_key_with_real_kid,
    "embedded-jwk-and-jku": embedded_jwk,
    "wrong-audience": forge_with_claims(aud="api://someone-else"),
    "audience-list-without-ours": forge_with_claims(aud=["api://someone-else"]),
    "wrong-issuer-tenant": forge_with_claims(iss=other_tenants_issuer),
    "wrong-issuer-host": forge_with_claims(iss=lambda s, t: issuer_for("https://login.example", t.tenant_id)),
    "expired": forge_with_claims(exp=lambda s, t: int(time.time()) - 3600),
    "not-yet-valid": forge_with_claims(nbf=lambda s, t: int(time.time()) + 3600),
    "missing-exp": forge_with_claims(exp=None),
    "missing-nbf": forge_with_claims(nbf=None),
    "missing-aud": forge_with_claims(aud=None),
    "missing-iss": forge_with_claims(iss=None),
    "missing-sub": forge_with_claims(sub=None),
    "missing-tid": forge_with_claims(tid=None),
    "exp-not-a-number": forge_with_claims(exp="tomorrow"),
    "roles-not-a-list": forge_with_claims(roles="Directory.ReadWrite.All"),
}


def test_a_correctly_forged_token_is_accepted(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    """The control for the forgeries below: the same construction with nothing wrong verifies, so each
    refusal is caused by the one thing that forgery changed."""
    response = graph_get(http, forge_with_claims()(server, shared))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_or_invalid_access_token_is_refused(
    server: TestServer, http: httpx.Client, shared: TenantHandle, name: str
) -> None:
    assert_401(graph_get(http, FORGERIES[name](server, shared)))


# ---------------------------------------------------------------- token endpoint


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_token_endpoint_issues_a_bearer_token_that_works(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    response = token_request(http, shared.tenant_id, credentials(shared))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert response.headers["cache-control"] == "no-store"
    assert graph_get(http, body["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"client_secret": "wrong-secret"},
        {"client_secret": ""},
        {"client_id": str(uuid.uuid4())},
        {"client_id": "not-a-uuid"},
        {"client_id": ""},
    ],
    ids=["wrong-secret", "empty-secret", "unknown-client-id", "malformed-client-id", "empty-client-id"],
)
def test_bad_client_credentials_are_invalid_client(
    server: TestServer, http: httpx.Client, shared: TenantHandle, change: dict[str, str]
) -> None:
    response = token_request(http, shared.tenant_id, credentials(shared, **change))
    assert_oauth_error(response, 401, "invalid_client")


def test_app_of_another_tenant_cannot_get_a_token_at_this_tenant(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    other = server.tenant()
    assert token_request(http, other.tenant_id, credentials(other)).status_code == 200
    response = token_request(http, shared.tenant_id, credentials(other))
    assert_oauth_error(response, 401, "invalid_client")
    response = token_request(http, shared.domain, credentials(other))
    assert_oauth_error(response, 401, "invalid_client")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"scope": ""}, "invalid_request"),
        ({"scope": "https://attacker.example/.default"}, "invalid_scope"),
        ({"scope": f"{GRAPH}/User.Read.All"}, "invalid_scope"),
        ({"scope": f"{GRAPH}/.default api://trustplane/.default"}, "invalid_scope"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "unauthorized_client"),  # not registered for it
        ({"grant_type": ""}, "unsupported_grant_type"),
    ],
    ids=[
        "missing-scope",
        "unknown-resource",
        "not-default-scope",
        "two-scopes",
        "password",
        "code",
        "no-grant",
    ],
)
def test_bad_token_requests_are_400(
    server: TestServer, http: httpx.Client, shared: TenantHandle, change: dict[str, str], error: str
) -> None:
    data = credentials(shared, **change)
    if not data["scope"]:
        del data["scope"]
    assert_oauth_error(token_request(http, shared.tenant_id, data), 400, error)


def test_token_request_must_be_a_form(server: TestServer, http: httpx.Client, shared: TenantHandle) -> None:
    response = http.post(f"/{shared.tenant_id}/oauth2/v2.0/token", json=credentials(shared))
    assert_oauth_error(response, 400, "invalid_request")


def test_token_request_with_a_repeated_parameter_is_refused(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    body = "&".join(f"{k}={v}" for k, v in credentials(shared).items()) + "&client_id=" + str(uuid.uuid4())
    response = http.post(
        f"/{shared.tenant_id}/oauth2/v2.0/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_token_request_for_an_unknown_tenant_is_refused(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    for path in (str(uuid.uuid4()), "no-such-tenant.example.com"):
        assert_oauth_error(token_request(http, path, credentials(shared)), 400, "invalid_request")


def test_http_basic_client_authentication_works(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    data = {"grant_type": "client_credentials", "scope": f"{GRAPH}/.default"}
    response = token_request(http, shared.tenant_id, data, auth=(shared.client_id, shared.client_secret))
    assert response.status_code == 200, response.text
    assert graph_get(http, response.json()["access_token"]).status_code == 200
    wrong = token_request(http, shared.tenant_id, data, auth=(shared.client_id, "wrong"))
    assert_oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].lower().startswith("basic")


def test_tenant_path_accepts_the_id_or_the_domain(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    for path in (shared.tenant_id, shared.domain, shared.domain.upper()):
        response = token_request(http, path, credentials(shared))
        assert response.status_code == 200, f"{path}: {response.text}"
        claims = json.loads(base64.urlsafe_b64decode(response.json()["access_token"].split(".")[1] + "=="))
        assert claims["tid"] == shared.tenant_id
        assert claims["iss"] == issuer_for(server.url, shared.tenant_id)


def test_second_audience_gets_a_token_with_that_audience(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    token = shared.token(audience="api://trustplane")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == "api://trustplane"
    assert graph_get(http, token).status_code == 200


# ---------------------------------------------------------------- JWKS and discovery


def jwks(http: httpx.Client, tenant_id: str) -> Any:
    response = http.get(f"/{tenant_id}/discovery/v2.0/keys")
    assert response.status_code == 200
    return response.json()


def header_of(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


def test_jwks_publishes_the_tokens_kid_and_the_token_verifies_against_it(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    token = shared.token()
    published = jwks(http, shared.tenant_id)
    assert header_of(token)["kid"] in {k["kid"] for k in published["keys"]}
    decoded = jwt.decode(token, KeySet.import_key_set(published), algorithms=["RS256"])
    assert decoded.claims["tid"] == shared.tenant_id
    assert set(decoded.claims["roles"]) == {"Directory.ReadWrite.All"}


def test_jwks_holds_only_public_rsa_signing_keys(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    for key in jwks(http, shared.tenant_id)["keys"]:
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["alg"] == "RS256"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material in the JWKS"


def test_openid_configuration_matches_the_tokens(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    doc = http.get(f"/{shared.domain}/v2.0/.well-known/openid-configuration").json()
    claims = jwt.decode(shared.token(), KeySet.import_key_set(jwks(http, shared.tenant_id))).claims
    assert doc["issuer"] == claims["iss"] == issuer_for(server.url, shared.tenant_id)
    assert doc["jwks_uri"] == f"{server.url}/{shared.tenant_id}/discovery/v2.0/keys"
    assert doc["token_endpoint"] == f"{server.url}/{shared.tenant_id}/oauth2/v2.0/token"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


# ---------------------------------------------------------------- key rotation


def rotate(server: TestServer, tenant_id: str) -> str:
    """Rotate the way ``trustplane keys rotate`` does: from outside the serving process's key cache."""

    async def run() -> str:
        async with server.db.session() as session:
            return await server.keys.rotate(session, tenant_id)

    return server.run(run())


@pytest.fixture
def no_key_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server re-reads signing keys from the database at most once a cache period (60 s); a key change
    made by another process shows after that. The tests set the period to zero instead of waiting."""
    monkeypatch.setattr(keys_module, "_ACTIVE_TTL_SECONDS", 0.0)


def test_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    server: TestServer, http: httpx.Client, tenant: TenantHandle, no_key_cache: None
) -> None:
    before = tenant.token()
    old_kid = header_of(before)["kid"]
    new_kid = rotate(server, tenant.tenant_id)
    assert new_kid != old_kid
    after = token_request(http, tenant.tenant_id, credentials(tenant)).json()["access_token"]
    assert header_of(after)["kid"] == new_kid
    assert graph_get(http, before).status_code == 200
    assert graph_get(http, after).status_code == 200
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks(http, tenant.tenant_id)["keys"]}


def test_key_retired_for_longer_than_a_token_lifetime_verifies_nothing(
    server: TestServer, http: httpx.Client, tenant: TenantHandle, no_key_cache: None
) -> None:
    """Once every token a retired key signed has expired, the key is gone: a token signed with it (say, by
    someone who stole it) is refused even if the server verified tokens with that key before."""
    old_key = active_key(server, tenant.tenant_id)
    assert graph_get(http, tenant.token()).status_code == 200  # the server has now used the old key
    rotate(server, tenant.tenant_id)
    lifetime = server.settings.access_token_lifetime_seconds

    async def backdate() -> None:
        async with server.db.session() as session:
            await session.execute(
                sa.update(SigningKey)
                .where(SigningKey.kid == old_key.kid)
                .values(retired_at=utcnow() - timedelta(seconds=lifetime + 120))
            )

    server.run(backdate())
    assert old_key.kid not in {k["kid"] for k in jwks(http, tenant.tenant_id)["keys"]}
    assert_401(graph_get(http, rs256(old_key, real_claims(tenant))))


# ---------------------------------------------------------------- API tokens


def make_api_token(server: TestServer, tenant: TenantHandle, *perms: str, **kwargs: Any) -> tuple[str, str]:
    """(raw token, token id)."""

    async def make() -> tuple[str, str]:
        async with server.db.session() as session:
            issued = await create_api_token(
                session, tenant.tenant_id, SYSTEM, name="test", permissions=list(perms), **kwargs
            )
            return issued.token, issued.id

    return server.run(make())


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer", "token"])
def test_api_token_works_as_bearer_and_as_token(
    server: TestServer, http: httpx.Client, shared: TenantHandle, scheme: str
) -> None:
    token, _ = make_api_token(server, shared, "User.Read.All")
    assert graph_get(http, token, scheme).status_code == 200


def test_revoked_api_token_is_refused_at_once(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    token, token_id = make_api_token(server, shared, "User.Read.All")
    assert graph_get(http, token, "Token").status_code == 200

    async def revoke() -> None:
        async with server.db.session() as session:
            await revoke_api_token(session, shared.tenant_id, SYSTEM, token_id)

    server.run(revoke())
    assert_401(graph_get(http, token, "Token"))
    assert_401(graph_get(http, token, "Bearer"))


def test_expired_api_token_is_refused(server: TestServer, http: httpx.Client, shared: TenantHandle) -> None:
    token, _ = make_api_token(server, shared, "User.Read.All", expires_at=utcnow() - timedelta(minutes=1))
    assert_401(graph_get(http, token, "Token"))


def test_api_token_expiring_after_use_is_refused_at_once(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    token, token_id = make_api_token(server, shared, "User.Read.All", expires_at=utcnow() + timedelta(days=1))
    assert graph_get(http, token, "Token").status_code == 200

    async def expire() -> None:
        async with server.db.session() as session:
            await session.execute(
                sa.update(ApiToken)
                .where(ApiToken.id == token_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    server.run(expire())
    assert_401(graph_get(http, token, "Token"))


def test_api_token_with_a_tampered_secret_or_id_is_refused(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    token, _ = make_api_token(server, shared, "User.Read.All")
    assert graph_get(http, token, "Token").status_code == 200  # the verifier now remembers this token
    prefix, hex_id, secret = token.split("_", 2)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    other_id = uuid.uuid4().hex
    for forged in (
        f"{prefix}_{hex_id}_{flipped}",
        f"{prefix}_{hex_id}_{secret}x",
        f"{prefix}_{other_id}_{secret}",
    ):
        assert_401(graph_get(http, forged, "Token"))
    assert graph_get(http, token, "Token").status_code == 200


def test_api_token_permissions_are_enforced(
    server: TestServer, http: httpx.Client, shared: TenantHandle
) -> None:
    token, _ = make_api_token(server, shared, "User.Read.All")
    headers = {"Authorization": f"Token {token}"}
    assert http.get("/v1.0/users", headers=headers).status_code == 200
    created = http.post(
        "/v1.0/users",
        headers=headers,
        json={
            "accountEnabled": True,
            "displayName": "Nope",
            "mailNickname": "nope",
            "userPrincipalName": f"nope@{shared.domain}",
            "passwordProfile": {"password": "Correct-Horse-Battery-1"},
        },
    )
    assert created.status_code == 403, created.text
    assert created.json()["error"]["code"] == "Authorization_RequestDenied"
    assert http.get("/v1.0/groups", headers=headers).status_code == 403
    assert server.scalar("SELECT count(*) FROM users WHERE tenant_id = :t", t=shared.tenant_id) == 0


# ---------------------------------------------------------------- secrets at rest


def stored_text(server: TestServer, tenant_id: str, tables: tuple[str, ...]) -> str:
    """Every value of the tenant's rows in ``tables``, as one string to search."""
    server.wait_for_jobs()
    parts: list[str] = []
    for table in tables:
        for row in server.rows(f"SELECT * FROM {table} WHERE tenant_id = :t", t=tenant_id):
            parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_client_secrets_are_stored_as_argon2id_hashes_only(server: TestServer, shared: TenantHandle) -> None:
    hashes = server.rows("SELECT secret_hash FROM client_secrets WHERE tenant_id = :t", t=shared.tenant_id)
    assert hashes and all(h.startswith("$argon2id$") for (h,) in hashes)
    everything = stored_text(
        server, shared.tenant_id, ("client_secrets", "applications", "events", "audit_log", "jobs")
    )
    assert shared.client_secret not in everything


def test_api_tokens_are_stored_as_argon2id_hashes_only(server: TestServer, shared: TenantHandle) -> None:
    token, token_id = make_api_token(server, shared, "User.Read.All")
    secret = token.split("_", 2)[2]
    (stored_hash,) = server.rows("SELECT secret_hash FROM api_tokens WHERE id = :id", id=token_id)[0]
    assert stored_hash.startswith("$argon2id$")
    everything = stored_text(server, shared.tenant_id, ("api_tokens", "events", "audit_log", "jobs"))
    assert secret not in everything and token not in everything
