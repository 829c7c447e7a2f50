"""A real OpenID Connect client — Authlib's ``OAuth2Client`` (httpx) — against TrustPlane on loopback: it
reads the discovery document, sends the user to authorize with PKCE (S256) and a nonce, the user signs in
through TrustPlane's own password form, the client redeems the code, validates the ID token against the
JWKS with Authlib's OIDC claim rules (issuer, audience, nonce, at_hash, auth_time), refreshes, and
validates the refreshed ID token too."""

from __future__ import annotations

import html
import re
import secrets
import time
from typing import Any
from urllib.parse import urljoin

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.idp.oauth.support import register
from tests.support.server import TenantHandle, TestServer

PASSWORD = "Correct-Horse-42-oidc"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def make_user(tenant: TenantHandle) -> str:
    alias = f"oidc{secrets.token_hex(4)}"
    with tenant.client() as admin:
        created = admin.post(
            "/v1.0/users",
            json={
                "accountEnabled": True,
                "displayName": "Oidc User",
                "mailNickname": alias,
                "userPrincipalName": f"{alias}@{tenant.domain}",
                "mail": f"{alias}@{tenant.domain}",
                "passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": False},
            },
        )
    assert created.status_code == 201, created.text
    return str(created.json()["userPrincipalName"])


def sign_in_and_get_callback(browser: httpx.Client, url: str, redirect_uri: str, upn: str) -> str:
    """A browser without JavaScript: follows redirects on this server, fills the password form when it
    meets it, and stops at the app's redirect URI (returned with its query)."""
    response = browser.get(url)
    signed_in = False
    for _ in range(10):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            if location.startswith(redirect_uri):
                assert signed_in, "the code came back without the user signing in"
                return location
            response = browser.get(urljoin(str(response.url), location))
        elif response.status_code == 200 and 'name="password"' in response.text:
            match = _CSRF.search(response.text)
            assert match, response.text[:500]
            signed_in = True
            response = browser.post(
                str(response.url),
                data={"username": upn, "password": PASSWORD, "csrf_token": html.unescape(match.group(1))},
            )
        else:
            raise AssertionError(f"unexpected page {response.status_code}: {response.text[:500]}")
    raise AssertionError("too many redirects")


def validated_id_token(
    id_token: str, keys: KeySet, *, issuer: str, client_id: str, access_token: str, nonce: str | None
) -> dict[str, Any]:
    decoded = jwt.decode(id_token, keys, algorithms=["RS256"])
    options: dict[str, Any] = {"iss": {"essential": True, "value": issuer}, "aud": {"values": [client_id]}}
    params: dict[str, Any] = {"client_id": client_id, "access_token": access_token}
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
        params["nonce"] = nonce
    claims = CodeIDToken(decoded.claims, decoded.header, options=options, params=params)
    claims.validate(now=int(time.time()), leeway=60)  # raises on any failed check
    return dict(claims)


def test_authlib_client_completes_code_with_pkce_refreshes_and_validates_id_tokens(
    server: TestServer, tenant: TenantHandle
) -> None:
    upn = make_user(tenant)
    redirect_uri = "http://127.0.0.1:8765/callback"
    app = register(tenant, public=False, redirect_uris=(redirect_uri,))
    discovery = httpx.get(f"{server.url}/{tenant.tenant_id}/v2.0/.well-known/openid-configuration").json()
    keys = KeySet.import_key_set(httpx.get(discovery["jwks_uri"]).json())
    nonce = generate_token(20)
    verifier = generate_token(64)

    with OAuth2Client(
        client_id=app.client_id,
        client_secret=app.secret,
        scope="openid profile email offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    ) as client:
        url, state = client.create_authorization_url(
            discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        with httpx.Client(follow_redirects=False, timeout=30) as browser:
            callback = sign_in_and_get_callback(browser, url, redirect_uri, upn)
        token = client.fetch_token(
            discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state
        )
        claims = validated_id_token(
            token["id_token"],
            keys,
            issuer=discovery["issuer"],
            client_id=app.client_id,
            access_token=token["access_token"],
            nonce=nonce,
        )
        assert claims["preferred_username"].lower() == upn.lower()
        assert "pwd" in claims["amr"] and abs(claims["auth_time"] - time.time()) < 300

        userinfo = client.get(discovery["userinfo_endpoint"])
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims["sub"]

        refreshed = client.refresh_token(discovery["token_endpoint"], refresh_token=token["refresh_token"])
        assert refreshed["refresh_token"] != token["refresh_token"]
        again = validated_id_token(
            refreshed["id_token"],
            keys,
            issuer=discovery["issuer"],
            client_id=app.client_id,
            access_token=refreshed["access_token"],
            nonce=None,
        )
        assert again["sub"] == claims["sub"] and again["auth_time"] == claims["auth_time"]
