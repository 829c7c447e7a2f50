"""The authorization code flow end to end over HTTP: PKCE, the tokens and their claims, refresh rotation,
userinfo, consent, prompt=none, discovery and tenant isolation."""

from __future__ import annotations

import time

import httpx
import pytest

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


@pytest.fixture
def setup(tenant: TenantHandle) -> tuple[Client, str, httpx.Client]:
    client = register(tenant)
    user_id = make_user(tenant)
    return client, user_id, signed_in_browser(tenant, user_id, amr=("pwd", "otp", "mfa"))


def test_code_with_pkce_gives_access_id_and_refresh_tokens_with_the_sign_in_claims(
    server: TestServer, setup: tuple[Client, str, httpx.Client]
) -> None:
    client, user_id, browser = setup
    tenant_id = client.tenant.tenant_id
    verifier, challenge = pkce()
    params = authorize_params(client, challenge)
    code = redirected_params(authorize(browser, client, params), client)["code"]
    response = redeem(client, code, verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"] and body["id_token"]
    id_claims = claims_of(server, tenant_id, body["id_token"])
    assert id_claims["aud"] == client.client_id
    assert id_claims["sub"] == user_id and id_claims["tid"] == tenant_id
    assert id_claims["nonce"] == params["nonce"]
    assert id_claims["amr"] == ["pwd", "otp", "mfa"] and id_claims["acr"] == "urn:trustplane:acr:mfa"
    assert abs(id_claims["auth_time"] - time.time()) < 120 and id_claims["sid"]
    access = claims_of(server, tenant_id, body["access_token"])
    assert access["idtyp"] == "user" and access["sub"] == user_id and access["azp"] == client.client_id
    assert set(access["scp"].split()) == {"openid", "profile", "email"}
    assert access["sid"] == id_claims["sid"]


def test_userinfo_answers_the_signed_in_user_for_a_user_token_only(
    server: TestServer, setup: tuple[Client, str, httpx.Client]
) -> None:
    client, user_id, browser = setup
    tenant = client.tenant
    body = tokens(client, browser)
    answer = userinfo(server, tenant.tenant_id, body["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"] == user_id and answer.json()["email"].endswith(tenant.domain)
    app_token = userinfo(server, tenant.tenant_id, tenant.token())
    assert (
        app_token.status_code == 403 and 'error="insufficient_scope"' in app_token.headers["www-authenticate"]
    )
    assert userinfo(server, tenant.tenant_id, "not-a-token").status_code == 401


def test_refresh_rotates_the_refresh_token_and_keeps_the_sign_in(
    server: TestServer, setup: tuple[Client, str, httpx.Client]
) -> None:
    client, user_id, browser = setup
    first = tokens(client, browser)
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    old_id = claims_of(server, client.tenant.tenant_id, first["id_token"])
    new_id = claims_of(server, client.tenant.tenant_id, body["id_token"])
    assert new_id["auth_time"] == old_id["auth_time"] and new_id["sub"] == user_id and "nonce" not in new_id
    assert refresh(client, body["refresh_token"]).status_code == 200


def test_refresh_may_narrow_the_scope_but_not_widen_it(setup: tuple[Client, str, httpx.Client]) -> None:
    client, _, browser = setup
    first = tokens(client, browser)
    widened = refresh(client, first["refresh_token"])
    narrowed_token = widened.json()["refresh_token"]
    narrowed = client_refresh_with_scope(client, narrowed_token, "openid")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "openid"
    wider = client_refresh_with_scope(client, narrowed.json()["refresh_token"], "openid User.Read")
    assert_oauth_error(wider, 400, "invalid_scope")


def client_refresh_with_scope(client: Client, refresh_token: str, scope: str) -> httpx.Response:
    from tests.idp.oauth.support import token_request

    return token_request(client, grant_type="refresh_token", refresh_token=refresh_token, scope=scope)


def test_a_confidential_client_redeems_with_its_secret(tenant: TenantHandle) -> None:
    client = register(tenant, public=False, redirect_uris=("http://127.0.0.1:8400/callback",))
    assert client.secret is not None
    browser = signed_in_browser(tenant, make_user(tenant))
    body = tokens(client, browser)
    assert refresh(client, body["refresh_token"]).status_code == 200


def test_without_offline_access_there_is_no_refresh_token(setup: tuple[Client, str, httpx.Client]) -> None:
    client, _, browser = setup
    verifier, challenge = pkce()
    body = redeem(client, code_for(browser, client, challenge, scope="openid"), verifier).json()
    assert "refresh_token" not in body and "id_token" in body


def test_prompt_none_without_a_session_answers_login_required_at_the_redirect_uri(
    tenant: TenantHandle,
) -> None:
    client = register(tenant)
    with httpx.Client(base_url=tenant.server.url, follow_redirects=False) as anonymous:
        params = authorize_params(client, pkce()[1], prompt="none")
        answer = redirected_params(authorize(anonymous, client, params), client)
    assert answer["error"] == "login_required" and answer["state"] == params["state"]


def test_without_a_session_authorize_sends_the_browser_to_sign_in(tenant: TenantHandle) -> None:
    client = register(tenant)
    with httpx.Client(base_url=tenant.server.url, follow_redirects=False) as anonymous:
        response = authorize(anonymous, client, authorize_params(client, pkce()[1]))
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith(f"/{tenant.tenant_id}/")
    assert "code=" not in response.headers["location"]


def test_a_third_party_app_asks_for_consent_once_and_the_form_needs_its_csrf_token(
    tenant: TenantHandle,
) -> None:
    client = register(tenant, admin_consent=False)
    browser = signed_in_browser(tenant, make_user(tenant))
    verifier, challenge = pkce()
    params = authorize_params(client, challenge)
    page = authorize(browser, client, params)
    assert (
        page.status_code == 200 and "Contoso Expenses" in page.text and "View your email address" in page.text
    )
    form = dict(parse_qsl_form(page.text))
    action = f"/{tenant.tenant_id}/oauth2/v2.0/authorize/consent"
    forged = browser.post(action, data={**form, "csrf": "0" * 64, "decision": "allow"})
    assert forged.status_code == 403
    assert authorize(browser, client, params).status_code == 200  # still no consent recorded
    accepted = browser.post(action, data={**form, "decision": "allow"})
    assert accepted.status_code == 303
    code = redirected_params(browser.get(accepted.headers["location"]), client)["code"]
    assert redeem(client, code, verifier).status_code == 200
    # Consent is remembered: the next sign-in to the app goes straight to a code.
    assert "code" in redirected_params(
        authorize(browser, client, authorize_params(client, challenge)), client
    )


def test_declining_consent_returns_access_denied(tenant: TenantHandle) -> None:
    client = register(tenant, admin_consent=False)
    browser = signed_in_browser(tenant, make_user(tenant))
    params = authorize_params(client, pkce()[1])
    form = dict(parse_qsl_form(authorize(browser, client, params).text))
    denied = browser.post(
        f"/{tenant.tenant_id}/oauth2/v2.0/authorize/consent", data={**form, "decision": "deny"}
    )
    answer = redirected_params(denied, client)
    assert answer["error"] == "access_denied" and answer["state"] == params["state"]


def parse_qsl_form(page: str) -> list[tuple[str, str]]:
    import html
    import re

    return [
        (n, html.unescape(v))
        for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    ]


def test_discovery_names_every_endpoint_and_only_s256(server: TestServer, tenant: TenantHandle) -> None:
    doc = httpx.get(f"{server.url}/{tenant.domain}/v2.0/.well-known/openid-configuration").json()
    base = f"{server.url}/{tenant.tenant_id}"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["end_session_endpoint"] == f"{base}/oauth2/v2.0/logout"
    assert doc["userinfo_endpoint"] == f"{base}/openid/userinfo"
    assert doc["revocation_endpoint"] == f"{base}/oauth2/v2.0/revoke"
    assert doc["introspection_endpoint"] == f"{base}/oauth2/v2.0/introspect"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}


def test_every_authorization_response_names_its_issuer_rfc_9207(
    server: TestServer, setup: tuple[Client, str, httpx.Client]
) -> None:
    """A success and an error redirect both carry ``iss``, equal to the discovery document's issuer (the
    value a client compares against to detect a mix-up), and discovery advertises it."""
    client, _, browser = setup
    tenant = client.tenant
    doc = httpx.get(f"{server.url}/{tenant.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert doc["authorization_response_iss_parameter_supported"] is True
    success = redirected_params(authorize(browser, client, authorize_params(client, pkce()[1])), client)
    assert "code" in success and success["iss"] == doc["issuer"]
    with httpx.Client(base_url=server.url, follow_redirects=False) as anonymous:
        params = authorize_params(client, pkce()[1], prompt="none")
        error = redirected_params(authorize(anonymous, client, params), client)
    assert error["error"] == "login_required" and error["iss"] == doc["issuer"]


def test_a_code_is_only_good_at_its_own_tenant(
    server: TestServer, setup: tuple[Client, str, httpx.Client]
) -> None:
    client, _, browser = setup
    other = server.tenant()
    verifier, challenge = pkce()
    code = code_for(browser, client, challenge)
    elsewhere = httpx.post(
        f"{server.url}/{other.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
            "client_id": client.client_id,
        },
    )
    assert_oauth_error(elsewhere, 401, "invalid_client")  # the app does not exist there
    body = redeem(client, code, verifier).json()
    assert userinfo(server, other.tenant_id, body["access_token"]).status_code == 401


def test_authorize_by_post_is_the_same_request(setup: tuple[Client, str, httpx.Client]) -> None:
    client, _, browser = setup
    params = authorize_params(client, pkce()[1])
    posted = browser.post(f"/{client.tenant.tenant_id}/oauth2/v2.0/authorize", data=params)
    assert posted.status_code == 303
    answer = redirected_params(browser.get(posted.headers["location"]), client)
    assert answer["state"] == params["state"] and "code" in answer


def test_authorize_at_an_unknown_tenant_is_an_error_page(setup: tuple[Client, str, httpx.Client]) -> None:
    client, _, browser = setup
    response = browser.get(
        "/no-such-tenant.example/oauth2/v2.0/authorize", params=authorize_params(client, pkce()[1])
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        (
            {"grant_type": "authorization_code", "redirect_uri": "https://app.example/callback"},
            400,
            "invalid_request",
        ),
        ({"grant_type": "authorization_code", "code": "x" * 43}, 400, "invalid_grant"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "a", "password": "b"}, 400, "unsupported_grant_type"),
        (
            {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
            400,
            "unauthorized_client",
        ),
    ],
    ids=[
        "code-missing",
        "code-unknown",
        "refresh-missing",
        "refresh-unknown",
        "password-grant",
        "public-client-credentials",
    ],
)
def test_bad_token_requests_get_rfc_6749_errors_and_write_nothing(
    server: TestServer, tenant: TenantHandle, fields: dict[str, str], status: int, error: str
) -> None:
    from tests.idp.oauth.support import token_request

    client = register(tenant)
    counts = "SELECT (SELECT count(*) FROM oauth_grants) + (SELECT count(*) FROM oauth_refresh_tokens)"
    before = server.scalar(counts)
    assert_oauth_error(token_request(client, **fields), status, error)
    assert server.scalar(counts) == before
