"""The gate behind the authorize endpoint, through HTTP: no session sends the browser to the sign-in page
(prompt=none gets login_required at the app), a live session is decided again for each app (step-up to MFA
when this app's policy wants it, the factor joining the same session), signInFrequency sends a session whose
authentication is too old back to sign-in, and a block for this app shows the block page."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.idp.signin.support import ADMIN, BLOCK, MFA, Browser, code_for, make_policy, make_user, secret_on
from tests.support.server import TenantHandle, TestServer
from trustplane.core.events import SYSTEM
from trustplane.idp.oauth.service import register_client
from trustplane.idp.sessions import BrowserSession, BrowserSessionRepository


@pytest.fixture
def admin(server: TestServer) -> TenantHandle:
    return server.tenant(*ADMIN)


class App:
    def __init__(self, tenant: TenantHandle, name: str) -> None:
        self.tenant = tenant
        self.redirect_uri = "http://127.0.0.1:9/callback"

        async def register() -> Any:
            async with tenant.server.db.session() as session:
                return await register_client(
                    session, tenant.tenant_id, SYSTEM, name=name, redirect_uris=[self.redirect_uri]
                )

        self.client_id = tenant.server.run(register()).client_id

    def authorize(self, b: Browser, **extra: str) -> httpx.Response:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": "openid",
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return b.get(f"/{self.tenant.tenant_id}/oauth2/v2.0/authorize?{urlencode(query)}")


def through(b: Browser, response: httpx.Response) -> httpx.Response:
    """Follow redirects within TrustPlane (accepting a consent page) until the app's redirect URI."""
    for _ in range(10):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            if location.startswith("http://127.0.0.1:9/"):
                return response
            response = b.get(location)
        elif response.status_code == 200 and "Permissions requested" in response.text:
            action = response.text.split('<form method="post" action="', 1)[1].split('"', 1)[0]
            fields = dict(
                (name, value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text
                )
            )
            response = b.http.post(
                action, data={k: html.unescape(v) for k, v in fields.items()} | {"decision": "allow"}
            )
        else:
            return response
    raise AssertionError("too many redirects")


def app_answer(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return parse_qs(urlsplit(response.headers["location"]).query)


def signed_in(admin: TenantHandle, app: App, upn: str, b: Browser) -> dict[str, list[str]]:
    first = app.authorize(b)
    assert first.status_code == 303 and "/signin?return_to=" in first.headers["location"]
    b.follow(first)
    done = b.post(b.base, {"username": upn, "password": "Correct-Horse-42"})
    return app_answer(through(b, done))


def test_no_session_goes_to_sign_in_then_the_app_gets_a_code(admin: TenantHandle) -> None:
    app = App(admin, "Notes")
    with admin.client() as c:
        user = make_user(c, admin.domain, "gate1")
    with Browser(admin) as b:
        answer = signed_in(admin, app, user["userPrincipalName"], b)
        again = app_answer(through(b, app.authorize(b)))  # single sign-on: no page at all
    assert answer["code"] and answer["state"] == ["st"]
    assert again["code"] and again["code"] != answer["code"]


def test_prompt_none_without_a_session_answers_login_required(admin: TenantHandle) -> None:
    app = App(admin, "Silent")
    with Browser(admin) as b:
        answer = app_answer(app.authorize(b, prompt="none"))
    assert answer["error"] == ["login_required"]


def test_a_session_steps_up_to_mfa_for_an_app_whose_policy_wants_it(admin: TenantHandle) -> None:
    plain, strict = App(admin, "Plain"), App(admin, "Strict")
    with admin.client() as c:
        user = make_user(c, admin.domain, "gate2")
        make_policy(c, "MFA for Strict", MFA, applications={"includeApplications": [strict.client_id]})
    with Browser(admin) as b:
        assert signed_in(admin, plain, user["userPrincipalName"], b)["code"]
        session_before = b.session_cookie
        step_up = strict.authorize(b)
        assert step_up.status_code == 303 and step_up.headers["location"].endswith("/signin/totp")
        secret = secret_on(b.follow(step_up))
        codes = b.post(f"{b.base}/totp", {"code": code_for(secret)})
        assert codes.status_code == 200
        continue_to = codes.text.split('id="continue"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
        answer = app_answer(through(b, b.get(html.unescape(continue_to))))
    assert answer["code"]
    assert b.session_cookie == session_before  # the same session, now with the second factor
    rows = admin.server.rows("SELECT amr FROM browser_sessions WHERE user_id = :u", u=user["id"])
    assert len(rows) == 1 and "otp" in str(rows[0][0]) and "mfa" in str(rows[0][0])


def test_sign_in_frequency_sends_an_old_session_back_to_sign_in(admin: TenantHandle) -> None:
    app = App(admin, "Frequent")
    with admin.client() as c:
        user = make_user(c, admin.domain, "gate3")
        response = c.post(
            "/v1.0/identity/conditionalAccess/policies",
            json={
                "displayName": "Re-authenticate hourly",
                "state": "enabled",
                "conditions": {
                    "users": {"includeUsers": [user["id"]]},
                    "applications": {"includeApplications": [app.client_id]},
                },
                "sessionControls": {"signInFrequency": {"isEnabled": True, "type": "hours", "value": 1}},
            },
        )
        assert response.status_code == 201, response.text
    with Browser(admin) as b:
        assert signed_in(admin, app, user["userPrincipalName"], b)["code"]
        b.http.cookies.delete("tp_signin")  # the finished flow no longer vouches (as after five minutes)
        fresh = app_answer(through(b, app.authorize(b)))
        assert fresh["code"]  # authenticated minutes ago: within the hour
        admin.server.run(_age_sessions(admin, user["id"], hours=2))
        b.http.cookies.delete("tp_signin")
        stale = app.authorize(b)
    assert stale.status_code == 303 and "/signin?return_to=" in stale.headers["location"]
    codes = admin.server.rows(
        "SELECT error_code FROM sign_ins WHERE user_id = :u ORDER BY created_at DESC LIMIT 1", u=user["id"]
    )
    assert codes[0][0] == 50133


async def _age_sessions(admin: TenantHandle, user_id: str, hours: int) -> None:
    async with admin.server.db.session() as session:
        repo = BrowserSessionRepository(session, admin.tenant_id)
        rows = (await session.execute(repo.select().where(BrowserSession.user_id == user_id))).scalars()
        for row in rows:
            row.auth_time = row.auth_time - timedelta(hours=hours)


def test_a_session_blocked_for_one_app_sees_the_block_page(admin: TenantHandle) -> None:
    open_app, closed_app = App(admin, "Open"), App(admin, "Closed")
    with admin.client() as c:
        user = make_user(c, admin.domain, "gate4")
        make_policy(c, "Block Closed", BLOCK, applications={"includeApplications": [closed_app.client_id]})
    with Browser(admin) as b:
        assert signed_in(admin, open_app, user["userPrincipalName"], b)["code"]
        blocked = closed_app.authorize(b)
    assert blocked.status_code == 403 and "correlation-id" in blocked.text
