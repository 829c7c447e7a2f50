"""Continuous access evaluation: a partner's confirmCompromised, disabling a user, resetting their password
or an admin's revokeSignInSessions
ends the user's refresh tokens and browser sessions within the request that made the change, and a resource
API answers the user's still-unexpired access token with Entra's claims challenge."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.idp.oauth.support import (
    Client,
    assert_oauth_error,
    authorize,
    authorize_params,
    challenge_claims,
    make_user,
    pkce,
    refresh,
    register,
    signed_in_browser,
    tokens,
    userinfo,
)
from tests.support.server import TenantHandle, TestServer


def confirm_compromised(admin: httpx.Client, user_id: str) -> None:
    response = admin.post(
        "/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [user_id]}
    )
    assert response.status_code == 204, response.text


def disable(admin: httpx.Client, user_id: str) -> None:
    assert admin.patch(f"/v1.0/users/{user_id}", json={"accountEnabled": False}).status_code == 204


def reset_password(admin: httpx.Client, user_id: str) -> None:
    body = {"passwordProfile": {"password": "A-new-Passw0rd-77", "forceChangePasswordNextSignIn": False}}
    response = admin.patch(f"/v1.0/users/{user_id}", json=body)
    assert response.status_code == 204, response.text


def revoke_sign_in_sessions(admin: httpx.Client, user_id: str) -> None:
    response = admin.post(f"/v1.0/users/{user_id}/revokeSignInSessions")
    assert response.status_code == 200 and response.json()["value"] is True, response.text


CHANGES: dict[str, Callable[[httpx.Client, str], None]] = {
    "revokeSignInSessions": revoke_sign_in_sessions,
    "confirmCompromised": confirm_compromised,
    "accountEnabled-false": disable,
    "password-reset": reset_password,
}


@pytest.fixture
def admin_tenant(tenant: TenantHandle) -> TenantHandle:
    return tenant


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_change_ends_refresh_tokens_sessions_and_access_tokens_within_one_request(
    server: TestServer, admin_tenant: TenantHandle, change: str
) -> None:
    client: Client = register(admin_tenant)
    user_id = make_user(admin_tenant)
    browser = signed_in_browser(admin_tenant, user_id)
    current = refresh(client, tokens(client, browser)["refresh_token"])
    assert current.status_code == 200  # the control: refreshing worked before the change
    live = current.json()
    assert userinfo(server, admin_tenant.tenant_id, live["access_token"]).status_code == 200
    before = int(time.time())

    with admin_tenant.client() as admin:
        CHANGES[change](admin, user_id)

    # The very next request: the refresh token is dead…
    assert_oauth_error(refresh(client, live["refresh_token"]), 400, "invalid_grant")
    # …the unexpired access token is answered with a claims challenge asking for a newer token…
    answer = userinfo(server, admin_tenant.tenant_id, live["access_token"])
    assert answer.status_code == 401
    wanted = challenge_claims(answer)["access_token"]["nbf"]
    assert wanted["essential"] is True and int(wanted["value"]) >= before
    # …at a resource API too (Graph's dialect, same challenge)…
    graph = httpx.get(f"{server.url}/v1.0/users", headers={"Authorization": f"Bearer {live['access_token']}"})
    assert graph.status_code == 401 and challenge_claims(graph) == challenge_claims(answer)
    # …and the browser session no longer signs the user in to apps.
    response = authorize(browser, client, authorize_params(client, pkce()[1]))
    assert response.status_code in (302, 303) and "code=" not in response.headers["location"]


def test_confirm_compromised_on_another_user_leaves_this_user_signed_in(
    server: TestServer, admin_tenant: TenantHandle
) -> None:
    client = register(admin_tenant)
    user_id, other_id = make_user(admin_tenant), make_user(admin_tenant)
    live = tokens(client, signed_in_browser(admin_tenant, user_id))
    with admin_tenant.client() as admin:
        confirm_compromised(admin, other_id)
    assert refresh(client, live["refresh_token"]).status_code == 200
    assert userinfo(server, admin_tenant.tenant_id, live["access_token"]).status_code == 200


def test_tokens_issued_after_the_revocation_work(server: TestServer, admin_tenant: TenantHandle) -> None:
    """Revocation moves a line in time; a new sign-in after it is not caught by it."""
    client = register(admin_tenant)
    user_id = make_user(admin_tenant)
    with admin_tenant.client() as admin:
        reset_password(admin, user_id)
    fresh = tokens(client, signed_in_browser(admin_tenant, user_id))
    assert userinfo(server, admin_tenant.tenant_id, fresh["access_token"]).status_code == 200
    assert refresh(client, fresh["refresh_token"]).status_code == 200


# SCIM answers in its error schema, MCAS in its {"detail": …} JSON; both with the same claims challenge.
RESOURCE_FACES = {
    "scim": (
        "/scim/v2/Users",
        lambda body: (
            body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            and body["status"] == "401"
            and body["detail"]
        ),
    ),
    "mcas": ("/api/v1/alerts/", lambda body: set(body) == {"detail"} and body["detail"]),
}


@pytest.mark.parametrize("face", sorted(RESOURCE_FACES))
def test_every_resource_face_answers_a_revoked_users_token_with_a_claims_challenge_in_its_dialect(
    server: TestServer, admin_tenant: TenantHandle, face: str
) -> None:
    path, in_dialect = RESOURCE_FACES[face]
    client = register(admin_tenant)
    user_id = make_user(admin_tenant)
    live = tokens(client, signed_in_browser(admin_tenant, user_id))
    bearer = {"Authorization": f"Bearer {live['access_token']}"}
    control = httpx.get(f"{server.url}{path}", headers=bearer)
    assert control.status_code != 401, control.text  # the token is accepted (permitted or not) before
    reference = userinfo(server, admin_tenant.tenant_id, live["access_token"])
    assert reference.status_code == 200
    before = int(time.time())
    with admin_tenant.client() as admin:
        revoke_sign_in_sessions(admin, user_id)
    answer = httpx.get(f"{server.url}{path}", headers=bearer)
    assert answer.status_code == 401, answer.text
    assert 'error="insufficient_claims"' in answer.headers["www-authenticate"]
    wanted = challenge_claims(answer)["access_token"]["nbf"]
    assert wanted["essential"] is True and int(wanted["value"]) >= before
    assert challenge_claims(answer) == challenge_claims(
        userinfo(server, admin_tenant.tenant_id, live["access_token"])
    )
    assert in_dialect(answer.json()), answer.text
