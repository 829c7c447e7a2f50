"""Revocation (RFC 7009), introspection (RFC 7662), RP-initiated logout and ID tokens across key rotation."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from tests.idp.oauth.support import (
    Client,
    assert_oauth_error,
    authorize,
    authorize_params,
    claims_of,
    jwks,
    make_user,
    pkce,
    refresh,
    register,
    signed_in_browser,
    tokens,
    userinfo,
)
from tests.support.server import TenantHandle, TestServer
from trustplane.core.clock import utcnow


@pytest.fixture
def setup(tenant: TenantHandle) -> tuple[Client, httpx.Client]:
    return register(tenant, public=False), signed_in_browser(tenant, make_user(tenant))


def post(client: Client, endpoint: str, **fields: str) -> httpx.Response:
    data = {
        "client_id": client.client_id,
        **({"client_secret": client.secret} if client.secret else {}),
        **fields,
    }
    return httpx.post(
        f"{client.tenant.server.url}/{client.tenant.tenant_id}/oauth2/v2.0/{endpoint}", data=data
    )


# ---------------------------------------------------------------- revocation


def test_revoking_a_refresh_token_ends_its_family(
    server: TestServer, setup: tuple[Client, httpx.Client]
) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    assert post(client, "revoke", token=issued["refresh_token"]).status_code == 200
    assert_oauth_error(refresh(client, issued["refresh_token"]), 400, "invalid_grant")
    assert userinfo(server, client.tenant.tenant_id, issued["access_token"]).status_code == 401


def test_revoking_a_user_access_token_ends_its_family(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    assert (
        post(client, "revoke", token=issued["access_token"], token_type_hint="access_token").status_code
        == 200
    )
    assert_oauth_error(refresh(client, issued["refresh_token"]), 400, "invalid_grant")


def test_an_unknown_token_revokes_nothing_and_answers_200(setup: tuple[Client, httpx.Client]) -> None:
    client, _ = setup
    assert post(client, "revoke", token="no-such-token").status_code == 200


def test_another_client_cannot_revoke_a_token(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    other = register(client.tenant, public=False)
    issued = tokens(client, browser)
    assert post(other, "revoke", token=issued["refresh_token"]).status_code == 200
    assert refresh(client, issued["refresh_token"]).status_code == 200


def test_revocation_needs_client_authentication(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    response = post(client, "revoke", token=issued["refresh_token"], client_secret="wrong")
    assert_oauth_error(response, 401, "invalid_client")
    assert refresh(client, issued["refresh_token"]).status_code == 200


# ---------------------------------------------------------------- introspection


def test_introspection_tells_live_tokens_from_dead_ones(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    access = post(client, "introspect", token=issued["access_token"]).json()
    assert access["active"] is True and access["client_id"] == client.client_id
    assert set(access["scope"].split()) == {"openid", "profile", "email"}
    rt = post(client, "introspect", token=issued["refresh_token"]).json()
    assert rt["active"] is True and rt["token_type"] == "refresh_token"
    refresh(client, issued["refresh_token"])  # rotation spends it
    assert post(client, "introspect", token=issued["refresh_token"]).json() == {"active": False}
    assert post(client, "introspect", token="garbage").json() == {"active": False}


def test_introspection_is_for_confidential_clients_only(tenant: TenantHandle) -> None:
    public = register(tenant, public=True)
    assert_oauth_error(post(public, "introspect", token="x"), 401, "invalid_client")


# ---------------------------------------------------------------- logout


def test_logout_with_an_id_token_hint_ends_the_session_and_returns_to_a_registered_uri(
    setup: tuple[Client, httpx.Client],
) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    response = browser.get(
        f"/{client.tenant.tenant_id}/oauth2/v2.0/logout",
        params={
            "id_token_hint": issued["id_token"],
            "post_logout_redirect_uri": client.redirect_uri,
            "state": "s1",
        },
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{client.redirect_uri}?state=s1"
    assert "tp_session=" in response.headers["set-cookie"]  # cleared
    assert_oauth_error(refresh(client, issued["refresh_token"]), 400, "invalid_grant")
    again = authorize(browser, client, authorize_params(client, pkce()[1]))
    assert "code=" not in again.headers.get("location", "")


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "https://app.example/callback/", "https://app.example/callbackx"]
)
def test_logout_never_redirects_to_an_unregistered_uri(
    setup: tuple[Client, httpx.Client], target: str
) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    response = browser.get(
        f"/{client.tenant.tenant_id}/oauth2/v2.0/logout",
        params={"id_token_hint": issued["id_token"], "post_logout_redirect_uri": target},
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert refresh(client, issued["refresh_token"]).status_code == 200  # nothing was ended


def test_logout_without_a_hint_asks_first_and_the_confirmation_needs_its_csrf_token(
    setup: tuple[Client, httpx.Client],
) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    path = f"/{client.tenant.tenant_id}/oauth2/v2.0/logout"
    page = browser.get(path)
    assert page.status_code == 200 and "Sign out?" in page.text
    assert refresh(client, issued["refresh_token"]).status_code == 200  # a link alone signs nobody out
    forged = browser.post(path, data={"csrf": "0" * 64})
    assert forged.status_code == 200 and "Sign out?" in forged.text
    csrf = html.unescape(re.search(r'name="csrf" value="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    done = browser.post(path, data={"csrf": csrf})
    assert done.status_code == 200 and "You have signed out" in done.text
    assert_oauth_error(refresh(client, issued["refresh_token"]), 400, "invalid_grant")  # the session's grants


def test_logout_with_a_forged_hint_is_refused(setup: tuple[Client, httpx.Client]) -> None:
    client, browser = setup
    issued = tokens(client, browser)
    header, payload, _ = issued["id_token"].split(".")
    response = browser.get(
        f"/{client.tenant.tenant_id}/oauth2/v2.0/logout",
        params={"id_token_hint": f"{header}.{payload}.AAAA", "post_logout_redirect_uri": client.redirect_uri},
    )
    assert response.status_code == 400 and "location" not in response.headers


# ---------------------------------------------------------------- key rotation


def test_an_id_token_signed_before_a_key_rotation_still_verifies_against_the_jwks(
    server: TestServer, setup: tuple[Client, httpx.Client]
) -> None:
    client, browser = setup
    tenant_id = client.tenant.tenant_id
    before = tokens(client, browser)

    async def rotate() -> str:
        async with server.db.session() as session:
            return await server.keys.rotate(session, tenant_id)

    new_kid = server.run(rotate())
    assert claims_of(server, tenant_id, before["id_token"])["aud"] == client.client_id
    assert new_kid in {k.kid for k in jwks(server, tenant_id).keys}


def test_a_key_past_its_age_is_rotated_when_the_next_token_is_signed_and_stays_published(
    server: TestServer, tenant: TenantHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trustplane.auth import keys as keys_module

    monkeypatch.setattr(keys_module, "_ACTIVE_TTL_SECONDS", 0.0)  # re-read the key row on every signing
    client = register(tenant)
    browser = signed_in_browser(tenant, make_user(tenant))
    before = tokens(client, browser)
    old_kid = header_kid(before["id_token"])

    async def age_the_key() -> None:
        async with server.db.session() as session:
            await session.execute(
                sa.text("UPDATE signing_keys SET created_at = :at WHERE kid = :kid"),
                {"at": utcnow() - keys_module.KEY_MAX_AGE - timedelta(days=1), "kid": old_kid},
            )

    server.run(age_the_key())
    after = tokens(client, browser)
    assert header_kid(after["id_token"]) != old_kid
    published = {k.kid for k in jwks(server, tenant.tenant_id).keys}
    assert {old_kid, header_kid(after["id_token"])} <= published
    assert claims_of(server, tenant.tenant_id, before["id_token"])["sub"]  # still verifies


def header_kid(token: str) -> str:
    import base64
    import json

    return str(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"])
