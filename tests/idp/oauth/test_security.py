"""Attacks on the authorization server: open redirects, PKCE downgrade, code reuse, refresh-token reuse,
and forged user tokens (``alg: none``, HS256 signed with the public key) at userinfo and at a resource API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.idp.oauth.support import (
    Client,
    assert_oauth_error,
    authorize,
    authorize_params,
    claims_of,
    code_for,
    make_user,
    pkce,
    redeem,
    redirected_params,
    refresh,
    register,
    signed_in_browser,
    tokens,
    userinfo,
)
from tests.support.server import TenantHandle, TestServer

REGISTERED = "https://app.example/callback"


@pytest.fixture
def setup(tenant: TenantHandle) -> tuple[Client, httpx.Client]:
    client = register(tenant, redirect_uris=(REGISTERED, "https://app.example/cb?tenant=a"))
    return client, signed_in_browser(tenant, make_user(tenant))


# ---------------------------------------------------------------- open redirect

TRICKS = [
    "https://evil.example/callback",
    "https://app.example/callback/../../evil",
    "https://app.example/callback/",
    "https://app.example/callbackx",
    "https://app.example/callback.evil.example",
    "https://app.example.evil.example/callback",
    "https://app.example@evil.example/callback",
    "https://app.example/callback?next=https://evil.example",
    "https://app.example/callback#fragment",
    "HTTPS://APP.EXAMPLE/callback",
    "http://app.example/callback",
    "https://app.example:443/callback",
    "https://app.example/cb?tenant=a&x=1",
    "//evil.example/callback",
    "",
]


@pytest.mark.parametrize("redirect_uri", TRICKS)
def test_an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(
    setup: tuple[Client, httpx.Client], redirect_uri: str
) -> None:
    client, browser = setup
    response = authorize(browser, client, authorize_params(client, pkce()[1], redirect_uri=redirect_uri))
    assert response.status_code == 400, response.text[:300]
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "redirect URI" in response.text


def test_an_unknown_client_gets_an_error_page_never_a_redirect(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    params = authorize_params(client, pkce()[1], client_id="00000000-0000-4000-8000-000000000000")
    response = authorize(browser, client, params)
    assert response.status_code == 400 and "location" not in response.headers


def test_a_registered_redirect_uri_with_its_own_query_keeps_it(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    params = authorize_params(client, pkce()[1], redirect_uri="https://app.example/cb?tenant=a")
    location = authorize(browser, client, params).headers["location"]
    assert location.startswith("https://app.example/cb?tenant=a&code=")


# ---------------------------------------------------------------- PKCE downgrade


def test_plain_pkce_is_refused_at_authorize(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    verifier, _ = pkce()
    params = authorize_params(client, None, code_challenge=verifier, code_challenge_method="plain")
    assert redirected_params(authorize(browser, client, params), client)["error"] == "invalid_request"


def test_a_challenge_without_a_method_is_refused(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    params = authorize_params(client, None, code_challenge=pkce()[1])
    assert redirected_params(authorize(browser, client, params), client)["error"] == "invalid_request"


def test_a_public_client_must_use_pkce(tenant: TenantHandle) -> None:
    client = register(tenant, public=True)
    browser = signed_in_browser(tenant, make_user(tenant))
    answer = redirected_params(authorize(browser, client, authorize_params(client, None)), client)
    assert answer["error"] == "invalid_request"


@pytest.mark.parametrize("sent", ["missing", "wrong", "the-challenge-itself"])
def test_a_code_issued_with_a_challenge_needs_its_verifier(
    setup: tuple[Client, httpx.Client], sent: str
) -> None:
    client, browser = setup
    verifier, challenge = pkce()
    code = code_for(browser, client, challenge)
    bad = {"missing": None, "wrong": pkce()[0], "the-challenge-itself": challenge}[sent]
    assert_oauth_error(redeem(client, code, bad), 400, "invalid_grant")
    assert redeem(client, code, verifier).status_code == 200  # the failed attempts did not spend it


def test_a_verifier_for_a_code_issued_without_a_challenge_is_refused(
    setup: tuple[Client, httpx.Client],
) -> None:
    _, browser = setup
    client = register(setup[0].tenant, public=False)  # only a confidential client may skip PKCE
    code = code_for(browser, client, None)
    assert_oauth_error(redeem(client, code, pkce()[0]), 400, "invalid_grant")


def test_the_redirect_uri_must_match_at_redemption(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    verifier, challenge = pkce()
    code = code_for(browser, client, challenge)
    from tests.idp.oauth.support import token_request

    other = token_request(
        client,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri="https://app.example/cb?tenant=a",
    )
    assert_oauth_error(other, 400, "invalid_grant")


# ---------------------------------------------------------------- reuse


def test_a_second_redemption_of_a_code_fails_and_revokes_what_the_first_issued(
    server: TestServer, setup: tuple[Client, httpx.Client]
) -> None:
    client, browser = setup
    verifier, challenge = pkce()
    code = code_for(browser, client, challenge)
    first = redeem(client, code, verifier).json()
    assert userinfo(server, client.tenant.tenant_id, first["access_token"]).status_code == 200
    assert_oauth_error(redeem(client, code, verifier), 400, "invalid_grant")
    assert_oauth_error(refresh(client, first["refresh_token"]), 400, "invalid_grant")
    assert userinfo(server, client.tenant.tenant_id, first["access_token"]).status_code == 401


def test_a_reused_refresh_token_revokes_its_whole_family(
    server: TestServer, setup: tuple[Client, httpx.Client]
) -> None:
    client, browser = setup
    first = tokens(client, browser)
    second = refresh(client, first["refresh_token"]).json()
    assert_oauth_error(refresh(client, first["refresh_token"]), 400, "invalid_grant")  # the thief's replay
    assert_oauth_error(refresh(client, second["refresh_token"]), 400, "invalid_grant")  # the family is gone
    assert userinfo(server, client.tenant.tenant_id, second["access_token"]).status_code == 401


def test_a_refresh_token_only_works_for_its_own_client(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    other = register(client.tenant)
    first = tokens(client, browser)
    assert_oauth_error(refresh(other, first["refresh_token"]), 400, "invalid_grant")
    assert refresh(client, first["refresh_token"]).status_code == 200


def test_a_code_only_works_for_its_own_client(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    other = register(client.tenant)
    verifier, challenge = pkce()
    code = code_for(browser, client, challenge)
    assert_oauth_error(redeem(other, code, verifier), 400, "invalid_grant")


def test_a_confidential_client_must_authenticate_to_redeem(setup: tuple[Client, httpx.Client]) -> None:
    _, browser = setup
    client = register(setup[0].tenant, public=False)
    verifier, challenge = pkce()
    code = code_for(browser, client, challenge)
    response = httpx.post(
        f"{client.tenant.server.url}/{client.tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
            "client_id": client.client_id,
        },
    )
    assert_oauth_error(response, 401, "invalid_client")


# ---------------------------------------------------------------- forged user tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _hs256(secret: bytes, header: dict[str, object], claims: dict[str, object]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def forgeries(server: TestServer, client: Client, genuine: str) -> dict[str, str]:
    """A genuine user token's claims (with a fresh expiry) under a forged header and signature."""
    tenant_id = client.tenant.tenant_id
    claims = claims_of(server, tenant_id, genuine)
    claims["exp"] = int(time.time()) + 3600
    kid = json.loads(base64.urlsafe_b64decode(genuine.split(".")[0] + "=="))["kid"]
    public = next(
        k
        for k in httpx.get(f"{server.url}/{tenant_id}/discovery/v2.0/keys").json()["keys"]
        if k["kid"] == kid
    )
    pem = RSAKey.import_key(public).as_pem(private=False)
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    return {
        "alg-none": _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, claims),
        "alg-None": _unsigned({"alg": "None", "kid": kid}, claims),
        "hs256-with-public-key-pem": _hs256(pem, header, claims),
        "hs256-with-public-jwk": _hs256(json.dumps(public).encode(), header, claims),
    }


@pytest.mark.parametrize(
    "kind", ["alg-none", "alg-None", "hs256-with-public-key-pem", "hs256-with-public-jwk"]
)
def test_forged_user_tokens_are_refused_by_userinfo_and_by_a_resource_api(
    server: TestServer, setup: tuple[Client, httpx.Client], kind: str
) -> None:
    client, browser = setup
    genuine = tokens(client, browser)["access_token"]
    assert userinfo(server, client.tenant.tenant_id, genuine).status_code == 200  # the control
    forged = forgeries(server, client, genuine)[kind]
    assert userinfo(server, client.tenant.tenant_id, forged).status_code == 401
    graph = httpx.get(f"{server.url}/v1.0/users", headers={"Authorization": f"Bearer {forged}"})
    assert graph.status_code == 401
    assert graph.json()["error"]["code"] == "InvalidAuthenticationToken"
