"""Helpers for the authorization server's tests: users, app registrations, a signed-in browser (a browser
session made through ``idp.sessions.create_session``, its cookie set on an httpx client), PKCE pairs and
the code flow driven over HTTP against the real server."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.server import TenantHandle, TestServer
from trustplane.core.events import SYSTEM
from trustplane.directory.service import create_user
from trustplane.idp.oauth.service import RegisteredClient, grant_admin_consent, register_client
from trustplane.idp.sessions import SESSION_COOKIE, create_session

REDIRECT_URI = "https://app.example/callback"
SCOPE = "openid profile email offline_access"
ADMIN = ("Directory.ReadWrite.All", "IdentityRiskyUser.ReadWrite.All")


@dataclass
class Client:
    tenant: TenantHandle
    registered: RegisteredClient
    redirect_uri: str

    @property
    def client_id(self) -> str:
        return self.registered.client_id

    @property
    def secret(self) -> str | None:
        return self.registered.client_secret


def make_user(tenant: TenantHandle, alias: str | None = None) -> str:
    alias = alias or f"u{uuid.uuid4().hex[:8]}"

    async def make() -> str:
        async with tenant.server.db.session() as session:
            user = await create_user(
                session,
                tenant.tenant_id,
                SYSTEM,
                {
                    "user_principal_name": f"{alias}@{tenant.domain}",
                    "display_name": alias.title(),
                    "mail_nickname": alias,
                    "mail": f"{alias}@{tenant.domain}",
                },
                password=None,
            )
            return user.id

    return str(tenant.server.run(make()))


def register(
    tenant: TenantHandle,
    *,
    public: bool = True,
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    admin_consent: bool = True,
    grant_types: list[str] | None = None,
) -> Client:
    async def make() -> RegisteredClient:
        async with tenant.server.db.session() as session:
            registered = await register_client(
                session,
                tenant.tenant_id,
                SYSTEM,
                name="Contoso Expenses",
                redirect_uris=list(redirect_uris),
                public=public,
                grant_types=grant_types,
            )
            if admin_consent:
                await grant_admin_consent(
                    session, tenant.tenant_id, SYSTEM, registered.application_id, ["profile", "email"]
                )
            return registered

    return Client(tenant, tenant.server.run(make()), redirect_uris[0])


def signed_in_browser(tenant: TenantHandle, user_id: str, amr: tuple[str, ...] = ("pwd",)) -> httpx.Client:
    """A browser with a live TrustPlane session for the user (as if it had just signed in)."""

    async def make() -> str:
        async with tenant.server.db.session() as session:
            _, cookie = await create_session(session, tenant.tenant_id, user_id, amr=list(amr))
            return cookie

    browser = httpx.Client(base_url=tenant.server.url, follow_redirects=False, timeout=30)
    browser.cookies.set(
        SESSION_COOKIE, tenant.server.run(make()), domain="127.0.0.1", path=f"/{tenant.tenant_id}/"
    )
    return browser


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client: Client, challenge: str | None, **extra: str) -> dict[str, str]:
    params = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": client.redirect_uri,
        "scope": SCOPE,
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v != ""}


def authorize(browser: httpx.Client, client: Client, params: dict[str, str]) -> httpx.Response:
    return browser.get(f"/{client.tenant.tenant_id}/oauth2/v2.0/authorize", params=params)


def redirected_params(response: httpx.Response, client: Client) -> dict[str, str]:
    """The query of a redirect to the client's redirect URI (asserting that it is one)."""
    assert response.status_code == 302, (response.status_code, response.text[:400])
    location = response.headers["location"]
    assert location.split("?", 1)[0] == client.redirect_uri, location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_for(browser: httpx.Client, client: Client, challenge: str | None = None, **extra: str) -> str:
    params = authorize_params(client, challenge, **extra)
    answer = redirected_params(authorize(browser, client, params), client)
    assert answer.get("state") == params["state"], answer
    assert "code" in answer, answer
    return answer["code"]


def token_request(client: Client, **fields: str | None) -> httpx.Response:
    data = {"client_id": client.client_id, **({"client_secret": client.secret} if client.secret else {})}
    data.update({k: v for k, v in fields.items() if v is not None})
    return httpx.post(f"{client.tenant.server.url}/{client.tenant.tenant_id}/oauth2/v2.0/token", data=data)


def redeem(client: Client, code: str, verifier: str | None) -> httpx.Response:
    return token_request(
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=client.redirect_uri,
        code_verifier=verifier,
    )


def refresh(client: Client, refresh_token: str) -> httpx.Response:
    return token_request(client, grant_type="refresh_token", refresh_token=refresh_token)


def tokens(client: Client, browser: httpx.Client) -> dict[str, Any]:
    verifier, challenge = pkce()
    response = redeem(client, code_for(browser, client, challenge), verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def userinfo(server: TestServer, tenant_id: str, access_token: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/{tenant_id}/openid/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    )


def jwks(server: TestServer, tenant_id: str) -> KeySet:
    return KeySet.import_key_set(httpx.get(f"{server.url}/{tenant_id}/discovery/v2.0/keys").json())


def claims_of(server: TestServer, tenant_id: str, token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, jwks(server, tenant_id), algorithms=["RS256"]).claims)


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


def challenge_claims(response: httpx.Response) -> dict[str, Any]:
    """The claims request of an Entra-style CAE claims challenge in WWW-Authenticate."""
    header = response.headers["www-authenticate"]
    assert 'error="insufficient_claims"' in header, header
    encoded = header.split('claims="', 1)[1].split('"', 1)[0]
    return dict(json.loads(base64.b64decode(encoded)))
