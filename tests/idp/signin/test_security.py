"""Show 3 (the sign-in half): every form refuses a POST without the CSRF token or with a wrong one and
changes nothing; smart lockout under a password-spray run locks the spraying address while the real user
still signs in from their familiar address, and an attacker locking a user's unfamiliar bucket does not lock
the user out of the familiar one."""

from __future__ import annotations

import pytest

from tests.idp.signin.support import (
    ADMIN,
    MFA,
    PASSWORD,
    Browser,
    code_for,
    make_policy,
    make_user,
    secret_on,
)
from tests.support.server import TenantHandle, TestServer
from trustplane.idp.signin import service


@pytest.fixture
def admin(server: TestServer) -> TenantHandle:
    return server.tenant(*ADMIN)


def _set_policy(tenant: TenantHandle, **values: int) -> None:
    async def change() -> None:
        async with tenant.server.db.session() as session:
            await service.set_policy(session, tenant.tenant_id, **values)

    tenant.server.run(change())


def count(server: TestServer, sql: str, **params: str) -> int:
    return int(server.scalar(sql, **params) or 0)


# ---------------------------------------------------------------- CSRF on every form

FORGED = ["", "forged-token", "0" * 64]


@pytest.mark.parametrize("token", FORGED, ids=["missing", "wrong", "wrong-length-right"])
def test_password_form_without_a_valid_token_is_refused_and_changes_nothing(
    admin: TenantHandle, token: str
) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "csrf1")
    with Browser(admin) as b:
        b.get(b.base)
        refused = b.post(
            b.base, {"username": user["userPrincipalName"], "password": PASSWORD}, csrf=token or None
        )
    assert refused.status_code == 403 and "Nothing was changed" in refused.text
    assert b.session_cookie is None
    assert count(admin.server, "SELECT count(*) FROM sign_ins WHERE user_id = :u", u=user["id"]) == 0


def test_a_token_from_another_browser_is_refused(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "csrf2")
    with Browser(admin) as attacker, Browser(admin) as victim:
        attacker.get(attacker.base)
        victim.get(victim.base)
        refused = victim.post(
            victim.base, {"username": user["userPrincipalName"], "password": PASSWORD}, csrf=attacker.csrf()
        )
    assert refused.status_code == 403 and victim.session_cookie is None


def _at_totp_enrolment(admin: TenantHandle, alias: str) -> tuple[Browser, dict[str, str], str]:
    with admin.client() as c:
        user = make_user(c, admin.domain, alias)
        make_policy(c, f"MFA {alias}", MFA, users={"includeUsers": [user["id"]]})
    b = Browser(admin)
    enrol = b.follow(b.sign_in(user["userPrincipalName"]))
    return b, user, secret_on(enrol)


def test_totp_enrolment_form_refuses_a_forged_post(admin: TenantHandle) -> None:
    b, user, secret = _at_totp_enrolment(admin, "csrf3")
    with b:
        for token in ("", "forged"):
            refused = b.post(f"{b.base}/totp", {"code": code_for(secret)}, csrf=token or None)
            assert refused.status_code == 403
    assert count(admin.server, "SELECT count(*) FROM totp_credentials WHERE user_id = :u", u=user["id"]) == 0
    assert b.session_cookie is None


def test_mfa_form_refuses_a_forged_post(admin: TenantHandle) -> None:
    b, user, secret = _at_totp_enrolment(admin, "csrf4")
    with b:
        b.post(f"{b.base}/totp", {"code": code_for(secret)})
    with Browser(admin) as b2:
        b2.follow(b2.sign_in(user["userPrincipalName"]))
        before = count(admin.server, "SELECT count(*) FROM recovery_codes WHERE used_at IS NOT NULL")
        refused = b2.post(f"{b2.base}/mfa", {"method": "totp", "code": code_for(secret, 1)}, csrf="forged")
        assert refused.status_code == 403 and b2.session_cookie is None
        assert count(admin.server, "SELECT count(*) FROM recovery_codes WHERE used_at IS NOT NULL") == before


def test_password_change_form_refuses_a_forged_post(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(
            c,
            admin.domain,
            "csrf5",
            passwordProfile={"password": PASSWORD, "forceChangePasswordNextSignIn": True},
        )
    before = admin.server.scalar("SELECT password_hash FROM users WHERE id = :u", u=user["id"])
    with Browser(admin) as b:
        b.follow(b.sign_in(user["userPrincipalName"]))
        new = "Another-Pass-99"
        for token in (None, "forged"):
            refused = b.post(
                f"{b.base}/password",
                {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
                csrf=token,
            )
            assert refused.status_code == 403
    assert admin.server.scalar("SELECT password_hash FROM users WHERE id = :u", u=user["id"]) == before


@pytest.mark.parametrize(
    "path",
    ["/security-info/recovery-codes", "/security-info/passkey", "/security-info/passkey/options"],
)
def test_security_info_forms_refuse_a_forged_post(admin: TenantHandle, path: str) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "csrf6" + str(abs(hash(path)) % 1000))
    with Browser(admin) as b:
        b.follow(b.sign_in(user["userPrincipalName"]))
        b.get(f"{b.base}/security-info")
        refused = b.post(f"{b.base}{path}", {"credential": "{}", "name": "x"}, csrf="forged")
    assert refused.status_code == 403
    assert count(admin.server, "SELECT count(*) FROM recovery_codes WHERE user_id = :u", u=user["id"]) == 0
    assert (
        count(admin.server, "SELECT count(*) FROM webauthn_credentials WHERE user_id = :u", u=user["id"]) == 0
    )


def test_passkey_forms_refuse_a_forged_post(admin: TenantHandle) -> None:
    with Browser(admin) as b:
        b.get(b.base)
        options = b.post(f"{b.base}/passkey/options", {}, csrf="forged")
        sign_in = b.post(f"{b.base}/passkey", {"credential": "{}"}, csrf=None)
    assert options.status_code == 403 and sign_in.status_code == 403
    assert count(admin.server, "SELECT count(*) FROM sign_in_flows WHERE webauthn_challenge IS NOT NULL") == 0


# ---------------------------------------------------------------- smart lockout


def _spray(admin: TenantHandle, users: list[str], ip: str, password: str) -> list[str]:
    """One password tried against every account from one address; the alert text each got."""
    answers = []
    with Browser(admin, ip=ip) as b:
        for upn in users:
            page = b.sign_in(upn, password)
            assert page.status_code == 400
            answers.append(page.text)
    return answers


def test_password_spray_from_one_address_locks_the_address_not_the_real_user(admin: TenantHandle) -> None:
    _set_policy(admin, lockout_threshold=3, lockout_seconds=600)  # the address locks after 2 x 3 failures
    with admin.client() as c:
        users = [make_user(c, admin.domain, f"spray{i}")["userPrincipalName"] for i in range(9)]
    home = "198.51.100.77"
    with Browser(admin, ip=home) as b:
        assert b.sign_in(users[0]).status_code == 303  # the real user, once, from home: familiar
    answers = _spray(admin, users, "203.0.113.66", "Winter2026!")
    locked = ["Too many sign-in attempts from your network" in a for a in answers]
    assert locked == [False] * 6 + [True] * 3
    # Locked attempts do not even verify the password: the right one is refused too.
    with Browser(admin, ip="203.0.113.66") as b:
        assert "Too many sign-in attempts" in b.sign_in(users[1]).text
    with Browser(admin, ip=home) as b:
        assert b.sign_in(users[0]).status_code == 303 and b.session_cookie
    with Browser(admin, ip="192.0.2.5") as b:  # another user from a fresh address is not affected
        assert b.sign_in(users[2]).status_code == 303


def test_attacker_locking_a_user_leaves_the_users_familiar_address_open(admin: TenantHandle) -> None:
    _set_policy(admin, lockout_threshold=3, lockout_seconds=600)
    with admin.client() as c:
        upn = make_user(c, admin.domain, "target")["userPrincipalName"]
    home = "198.51.100.90"
    with Browser(admin, ip=home) as b:
        assert b.sign_in(upn).status_code == 303
    with Browser(admin, ip="203.0.113.99") as b:
        answers = [b.sign_in(upn, f"guess-{i}-xyz").text for i in range(4)]
    assert "temporarily locked" not in answers[2] and "temporarily locked" in answers[3]
    with Browser(admin, ip="192.0.2.44") as b:  # any other unfamiliar address: locked, even with the password
        assert "temporarily locked" in b.sign_in(upn).text and b.session_cookie is None
    with Browser(admin, ip=home) as b:
        assert b.sign_in(upn).status_code == 303 and b.session_cookie
    records = admin.server.rows(
        "SELECT error_code FROM sign_ins WHERE tenant_id = :t AND user_principal_name = :u "
        "ORDER BY created_at",
        t=admin.tenant_id,
        u=upn,
    )
    assert [r[0] for r in records].count(50053) == 2  # the locked attempts are logged as Entra logs them


# ---------------------------------------------------------------- bad input: an HTML page, nothing written


def test_bad_input_gets_a_page_never_a_server_error_and_writes_nothing(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "badinput")
    upn = user["userPrincipalName"]
    with Browser(admin) as b:
        b.get(b.base)
        token = b.csrf()
        too_big = b.http.post(
            b.base, data={"csrf_token": token, "username": upn, "password": "x" * 2_000_000}
        )
        as_json = b.http.post(b.base, json={"csrf_token": token, "username": upn, "password": PASSWORD})
        nul = b.http.post(b.base, data={"csrf_token": token, "username": upn + "\x00", "password": PASSWORD})
        b.get(b.base)
        junk_passkey = b.post(f"{b.base}/passkey", {"credential": '{"rawId": "AAAA", "response": 7}'})
        unknown_tenant = b.get("/no-such-tenant.example/signin")
    assert too_big.status_code == 413 and "too large" in too_big.text
    assert as_json.status_code == 403
    assert nul.status_code == 400 and "Enter your user name and password" in nul.text
    assert junk_passkey.status_code == 400 and "Start the passkey sign-in again" in junk_passkey.text
    assert unknown_tenant.status_code == 404 and "Organisation not found" in unknown_tenant.text
    for response in (too_big, as_json, nul, junk_passkey, unknown_tenant):
        assert response.headers["content-type"].startswith("text/html")
    assert count(admin.server, "SELECT count(*) FROM sign_ins WHERE user_id = :u", u=user["id"]) == 0


def test_a_flow_of_one_tenant_is_nothing_at_another(server: TestServer, admin: TenantHandle) -> None:
    other = server.tenant(*ADMIN)
    with admin.client() as c:
        user = make_user(c, admin.domain, "crosstenant")
    with Browser(admin) as b:
        b.get(b.base)
        token, cookie = b.csrf(), b.http.cookies.get("tp_signin")
    with Browser(other) as b2:
        b2.http.cookies.set("tp_signin", cookie or "", path=f"/{other.tenant_id}/")
        refused = b2.http.post(
            f"/{other.tenant_id}/signin",
            data={"csrf_token": token, "username": user["userPrincipalName"], "password": PASSWORD},
        )
    assert refused.status_code == 403 and b2.session_cookie is None
    assert count(server, "SELECT count(*) FROM sign_ins WHERE user_id = :u", u=user["id"]) == 0


def test_each_lockout_lasts_twice_as_long_up_to_an_hour(admin: TenantHandle) -> None:
    from datetime import UTC, datetime, timedelta

    from trustplane.idp.signin import lockout
    from trustplane.idp.signin.models import SignInPolicy

    policy = SignInPolicy(
        tenant_id=admin.tenant_id, allowed_aaguids=None, lockout_threshold=2, lockout_seconds=60
    )
    subjects = lockout.Subjects(ip=None, user="user:00000000-0000-4000-8000-000000000001:unfamiliar")
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    async def run() -> list[tuple[bool, str | None, str | None]]:
        seen = []
        now = start
        async with admin.server.db.session() as session:
            for _ in range(7):
                first = await lockout.record_failure(session, admin.tenant_id, subjects, policy, now)
                second = await lockout.record_failure(session, admin.tenant_id, subjects, policy, now)
                locked_at = await lockout.locked(session, admin.tenant_id, subjects, now)
                counter = (
                    await lockout.LockoutRepository(session, admin.tenant_id).for_subjects(subjects.all())
                )[subjects.user or ""]
                until = counter.locked_until
                seen.append((first or not second, locked_at, str(until - now) if until else None))
                now = until + timedelta(seconds=1) if until else now
        return seen

    seen = admin.server.run(run())
    assert [s[0] for s in seen] == [False] * 7  # the second failure of each pair locks, not the first
    assert all(s[1] == "user" for s in seen)
    assert [s[2] for s in seen] == [
        "0:01:00",
        "0:02:00",
        "0:04:00",
        "0:08:00",
        "0:16:00",
        "0:32:00",
        "1:00:00",
    ]
