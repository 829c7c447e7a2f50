"""The sign-in pages through HTTP as a browser without JavaScript uses them: password sign-in, conditional
access asking for MFA (TOTP enrolment, then a recovery code), the block page for a confirmed-compromised
user, a forced password change, the signIn record with its applied policies on Graph, and accessibility
basics of the markup."""

from __future__ import annotations

import re

import pytest

from tests.idp.signin.support import (
    ADMIN,
    BLOCK,
    MFA,
    PASSWORD,
    Browser,
    code_for,
    make_policy,
    make_user,
    recovery_codes_on,
    secret_on,
    sign_ins,
)
from tests.support.server import TenantHandle, TestServer


@pytest.fixture
def admin(server: TestServer) -> TenantHandle:
    return server.tenant(*ADMIN)


def test_password_sign_in_creates_a_session_and_a_signin_record(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "alice")
    with Browser(admin) as b:
        page = b.get(b.base)
        done = b.sign_in(user["userPrincipalName"])
        info = b.follow(done)
    assert page.status_code == 200 and "Sign in" in page.text
    assert done.status_code == 303 and done.headers["location"].endswith("/signin/security-info")
    assert b.session_cookie
    assert info.status_code == 200 and user["userPrincipalName"] in info.text
    [record] = sign_ins(admin, user["userPrincipalName"])
    assert record["status"]["errorCode"] == 0
    assert record["conditionalAccessStatus"] == "notApplied"


def test_wrong_password_is_refused_with_a_linked_error(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "bob")
    with Browser(admin) as b:
        refused = b.sign_in(user["userPrincipalName"], "not-the-password")
    assert refused.status_code == 400
    assert 'id="form-error"' in refused.text and 'aria-describedby="form-error"' in refused.text
    assert b.session_cookie is None
    [record] = sign_ins(admin, user["userPrincipalName"])
    assert record["status"]["errorCode"] == 50126


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(admin: TenantHandle) -> None:
    with admin.client() as c:
        make_user(c, admin.domain, "carol")
    with Browser(admin) as b:
        unknown = b.sign_in(f"nobody@{admin.domain}", "whatever-123")
    with Browser(admin) as b:
        wrong = b.sign_in(f"carol@{admin.domain}", "whatever-123")
    assert unknown.status_code == wrong.status_code == 400
    assert re.search(r'role="alert">([^<]*)<', unknown.text).group(1) == re.search(  # type: ignore[union-attr]
        r'role="alert">([^<]*)<', wrong.text
    ).group(1)


def test_mfa_policy_enrols_totp_then_accepts_a_recovery_code(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "dana")
        policy = make_policy(c, "Require MFA", MFA)
    upn = user["userPrincipalName"]
    with Browser(admin) as b:
        first = b.sign_in(upn)
        assert first.status_code == 303 and first.headers["location"].endswith("/signin/totp")
        enrol = b.follow(first)
        secret = secret_on(enrol)
        assert f"otpauth://totp/TrustPlane:{upn.replace('@', '%40')}" in enrol.text
        wrong = b.post(f"{b.base}/totp", {"code": "000000" if code_for(secret) != "000000" else "111111"})
        assert wrong.status_code == 400 and b.session_cookie is None
        codes_page = b.post(f"{b.base}/totp", {"code": code_for(secret)})
        codes = recovery_codes_on(codes_page)
        assert codes_page.status_code == 200 and len(codes) == 10 and b.session_cookie
    with Browser(admin) as b2:
        second = b2.sign_in(upn)
        assert second.status_code == 303 and second.headers["location"].endswith("/signin/mfa")
        mfa_page = b2.follow(second)
        assert 'autocomplete="one-time-code"' in mfa_page.text
        used = b2.post(f"{b2.base}/mfa", {"method": "recovery", "code": codes[0].lower()})
        assert used.status_code == 303 and b2.session_cookie
    with Browser(admin) as b3:
        b3.follow(b3.sign_in(upn))
        again = b3.post(f"{b3.base}/mfa", {"method": "recovery", "code": codes[0]})
        assert again.status_code == 400 and b3.session_cookie is None  # single use
    records = sign_ins(admin, upn)
    granted = [r for r in records if r["status"]["errorCode"] == 0]
    assert len(granted) == 2
    applied = granted[0]["appliedConditionalAccessPolicies"]
    assert [(p["id"], p["result"]) for p in applied] == [(policy["id"], "success")]
    assert granted[0]["conditionalAccessStatus"] == "success"


def test_confirmed_compromised_user_sees_the_block_page_with_a_correlation_id(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "erin")
        policy = make_policy(c, "Block risky users", BLOCK, userRiskLevels=["high"])
        confirmed = c.post(
            "/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [user["id"]]}
        )
        assert confirmed.status_code == 204, confirmed.text
    with Browser(admin) as b:
        blocked = b.follow(b.sign_in(user["userPrincipalName"]))
    assert blocked.status_code == 403
    correlation = re.search(r'id="correlation-id">([^<]+)<', blocked.text).group(1)  # type: ignore[union-attr]
    assert b.session_cookie is None
    [record] = sign_ins(admin, user["userPrincipalName"])
    assert record["correlationId"] == correlation
    assert record["status"]["errorCode"] == 53003
    assert record["appliedConditionalAccessPolicies"][0]["id"] == policy["id"]
    assert record["appliedConditionalAccessPolicies"][0]["result"] == "failure"


def test_forced_password_change_then_only_the_new_password_works(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(
            c,
            admin.domain,
            "frank",
            passwordProfile={"password": PASSWORD, "forceChangePasswordNextSignIn": True},
        )
    upn = user["userPrincipalName"]
    new = "Battery-Staple-77"
    with Browser(admin) as b:
        change = b.follow(b.sign_in(upn))
        assert change.status_code == 200 and 'autocomplete="new-password"' in change.text
        mismatch = b.post(
            f"{b.base}/password",
            {"current_password": PASSWORD, "new_password": new, "confirm_password": new + "x"},
        )
        assert mismatch.status_code == 400 and b.session_cookie is None
        done = b.post(
            f"{b.base}/password", {"current_password": PASSWORD, "new_password": new, "confirm_password": new}
        )
        assert done.status_code == 303 and b.session_cookie
    with Browser(admin) as b:
        assert b.sign_in(upn, PASSWORD).status_code == 400
    with Browser(admin) as b:
        assert b.sign_in(upn, new).status_code == 303 and b.session_cookie


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/%2e%2e/other",
        "javascript:alert(1)",
        "/{tenant}/../../x",
        "/{tenant}/x\r\nSet-Cookie: a=b",
        "/other-tenant/oauth2/v2.0/authorize",
    ],
)
def test_return_to_outside_this_tenant_is_refused(admin: TenantHandle, return_to: str) -> None:
    with Browser(admin) as b:
        page = b.get(b.base, return_to=return_to.replace("{tenant}", admin.tenant_id))
    assert page.status_code == 400 and "not valid" in page.text
    assert "tp_signin" not in page.headers.get("set-cookie", "")


def test_a_same_tenant_return_to_is_where_the_browser_goes_after_sign_in(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "gina")
    target = f"/{admin.tenant_id}/signin/security-info?x=1"
    with Browser(admin) as b:
        done = b.sign_in(user["userPrincipalName"], return_to=target)
    assert done.status_code == 303 and done.headers["location"] == target


def test_pages_are_accessible_and_self_contained(admin: TenantHandle) -> None:
    with Browser(admin) as b:
        page = b.get(b.base)
        css = b.get(f"{b.base}/static/signin.css")
        missing = b.get(f"{b.base}/static/../api.py")
    text = page.text
    assert '<html lang="en">' in text
    for field in ("username", "password"):
        assert f'<label for="{field}">' in text and f'id="{field}"' in text
    assert 'autocomplete="username webauthn"' in text and 'autocomplete="current-password"' in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # no external assets
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


def test_security_info_sets_up_an_authenticator_and_then_wants_it_before_changes(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "hank")
    upn = user["userPrincipalName"]
    with Browser(admin) as b:
        b.follow(b.sign_in(upn))
        enrol = b.get(f"{b.base}/totp")
        secret = secret_on(enrol)
        codes = b.post(f"{b.base}/totp", {"code": code_for(secret)})
        assert len(recovery_codes_on(codes)) == 10
        info = b.get(f"{b.base}/security-info")
        assert info.status_code == 200 and "Replace your authenticator app" in info.text
    assert admin.server.scalar("SELECT count(*) FROM totp_credentials WHERE user_id = :u", u=user["id"]) == 1
    with Browser(admin) as b:  # a password-only session must prove the second factor before changes
        b.sign_in(upn)
        step_up = b.get(f"{b.base}/security-info")
        assert step_up.status_code == 303 and step_up.headers["location"].endswith("/signin/mfa")
        b.follow(step_up)
        back = b.post(f"{b.base}/mfa", {"method": "totp", "code": code_for(secret, 1)})
        assert back.status_code == 303 and back.headers["location"].endswith("/signin/security-info")
        assert "Replace your authenticator app" in b.follow(back).text
    amr = admin.server.rows(
        "SELECT amr FROM browser_sessions WHERE user_id = :u ORDER BY created_at DESC LIMIT 1", u=user["id"]
    )
    assert "otp" in str(amr[0][0])


def test_security_info_without_a_session_goes_to_sign_in(admin: TenantHandle) -> None:
    with Browser(admin) as b:
        answer = b.get(f"{b.base}/security-info")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{b.base}?return_to=%2F{admin.tenant_id}%2Fsignin%2Fsecurity-info"
