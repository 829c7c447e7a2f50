"""Show 2: headless Chromium (Debian's /usr/bin/chromium driven by Playwright) signs in to a registered app
through the real authorize endpoint of a TrustPlane server on loopback — a password, then TOTP enrolment
and use when a conditional access policy requires MFA; a passkey registered (after the tenant's attestation
policy first refuses the unknown authenticator model) and used to sign in through Chromium's virtual
authenticator (also as the second factor); a confirmed-compromised user sees the block page. Each page is
saved as a screenshot in `test-artifacts/browser-signin/` (ignored by git; the path is printed). One browser
launch for the module; both database backends."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest

from tests.idp.signin.support import ADMIN, BLOCK, MFA, PASSWORD, make_policy, make_user
from tests.support.server import TenantHandle, TestServer, free_port
from trustplane.core.events import SYSTEM
from trustplane.idp.oauth.service import register_client
from trustplane.idp.signin import service as signin

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a real browser: about 10 s a test (still run by `make test`)
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed at /usr/bin/chromium (run `make browser`)")
    with playwright_sync.sync_playwright() as p:
        # launch() gives every run a fresh temporary user-data-dir.
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser-signin"  # ignored by git


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"screenshots of the sign-in pages: {ARTIFACTS}")
    return ARTIFACTS


class App:
    """A registered web app (confidential client) whose redirect URI the browser test intercepts."""

    def __init__(self, server: TestServer, tenant: TenantHandle, name: str) -> None:
        self.server = server
        self.tenant = tenant
        self.base = f"http://localhost:{server.port}"  # WebAuthn needs a domain (localhost is one), not an IP
        self.redirect_uri = f"http://127.0.0.1:{free_port()}/callback"

        async def register() -> Any:
            async with server.db.session() as session:
                return await register_client(
                    session, tenant.tenant_id, SYSTEM, name=name, redirect_uris=[self.redirect_uri]
                )

        registered = server.run(register())
        self.client_id, self.client_secret = registered.client_id, registered.client_secret
        self.verifier = secrets.token_urlsafe(48)

    def authorize_url(self) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=")
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": self.redirect_uri,
                "scope": "openid profile",
                "state": "s-" + secrets.token_hex(4),
                "nonce": secrets.token_hex(8),
                "code_challenge": challenge.decode(),
                "code_challenge_method": "S256",
            }
        )
        return f"{self.base}/{self.tenant.tenant_id}/oauth2/v2.0/authorize?{query}"

    def redeem(self, code: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.server.url}/{self.tenant.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "code_verifier": self.verifier,
            },
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


class Tab:
    """One browser context and page, with the app's callback intercepted and screenshots numbered."""

    def __init__(self, browser: Any, shots: Path, name: str, app: App) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.shots, self.name, self.app, self.n = shots, name, app, 0
        self.callback: str | None = None

        def fulfil(route: Any) -> None:
            self.callback = route.request.url
            route.fulfill(status=200, content_type="text/html", body="<p>the app got its answer</p>")

        self.page.route(re.compile(re.escape(app.redirect_uri) + r".*"), fulfil)

    def shot(self, label: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.shots / f"{self.name}-{self.n:02d}-{label}.png"), full_page=True)

    def sign_in_with_password(self, upn: str, password: str = PASSWORD) -> None:
        self.page.goto(self.app.authorize_url())
        assert self.page.locator("h1").inner_text() == "Sign in"
        self.shot("sign-in")
        self.page.get_by_label("Email or user name").fill(upn)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()

    def consent_if_asked(self) -> None:
        """Wait until the app has its answer, accepting the consent page if it comes first."""
        deadline = time.time() + 20
        while self.callback is None and time.time() < deadline:
            try:  # the page may be navigating away meanwhile (to the app, which has no heading)
                heading = self.page.locator("h1").first.inner_text(timeout=500)
            except playwright_sync.Error:
                heading = ""
            if heading == "Permissions requested":
                self.shot("consent")
                self.page.get_by_role("button", name="Accept").click()
                self.page.wait_for_url(re.compile(re.escape(self.app.redirect_uri) + r".*"))
            else:
                self.page.wait_for_timeout(100)
        assert self.callback is not None, (
            self.page.url,
            re.findall(r'role="alert">([^<]*)', self.page.content()),
        )

    def code(self) -> str:
        assert self.callback is not None
        query = parse_qs(urlsplit(self.callback).query)
        assert "error" not in query, query
        return query["code"][0]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def admin(server: TestServer) -> TenantHandle:
    return server.tenant(*ADMIN)


def test_password_then_totp_when_a_policy_requires_mfa(
    browser: Any, shots: Path, server: TestServer, admin: TenantHandle
) -> None:
    app = App(server, admin, "Payroll")
    with admin.client() as c:
        user = make_user(c, admin.domain, "mfa.user")
        make_policy(
            c,
            "MFA for Payroll",
            MFA,
            users={"includeUsers": [user["id"]]},
            applications={"includeApplications": [app.client_id]},
        )
    tab = Tab(browser, shots, f"{server.backend}-totp", app)
    try:
        tab.sign_in_with_password(user["userPrincipalName"])
        tab.page.wait_for_url(re.compile(r".*/signin/totp$"))
        tab.shot("totp-enrolment")
        secret = tab.page.locator("#totp-secret code").inner_text().replace(" ", "")
        assert tab.page.locator("#totp-uri").get_attribute("href", timeout=5000).startswith("otpauth://totp/")
        # Enrol with the previous time step's code (within the allowed drift), so the sign-in below can use
        # the current one at once: a code is accepted only once.
        tab.page.get_by_label("Code from your authenticator app").fill(
            pyotp.TOTP(secret).at(time.time() - 30)
        )
        tab.page.get_by_role("button", name="Verify and continue").click()
        assert tab.page.locator("#recovery-codes li").count() == 10
        tab.shot("recovery-codes")
        tab.page.locator("#continue").click()
        tab.consent_if_asked()
        tokens = app.redeem(tab.code())
        assert tokens["id_token"] and tokens["access_token"]
        # The next sign-in asks for the app's code.
        tab.context.clear_cookies()
        tab.callback = None
        tab.sign_in_with_password(user["userPrincipalName"])
        tab.page.wait_for_url(re.compile(r".*/signin/mfa$"))
        tab.shot("mfa")
        tab.page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
        tab.page.get_by_role("button", name="Verify").click()
        tab.consent_if_asked()
        assert app.redeem(tab.code())["id_token"]
    finally:
        tab.close()
    amr = server.rows("SELECT amr FROM browser_sessions WHERE user_id = :u ORDER BY created_at", u=user["id"])
    assert all("otp" in str(row[0]) and "mfa" in str(row[0]) for row in amr) and len(amr) == 2


def _virtual_authenticator(tab: Tab) -> Any:
    cdp = tab.context.new_cdp_session(tab.page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp


def test_passkey_registered_under_the_attestation_policy_then_used_to_sign_in(
    browser: Any, shots: Path, server: TestServer, admin: TenantHandle
) -> None:
    app = App(server, admin, "Wiki")
    with admin.client() as c:
        user = make_user(c, admin.domain, "passkey.user")
    tab = Tab(browser, shots, f"{server.backend}-passkey", app)
    try:
        _virtual_authenticator(tab)
        tab.sign_in_with_password(user["userPrincipalName"])
        tab.consent_if_asked()
        tab.page.goto(f"{app.base}/{admin.tenant_id}/signin/security-info")
        tab.shot("security-info")
        tab.page.get_by_role("button", name="Add a passkey").click()
        refusal = tab.page.locator("#form-error")
        refusal.wait_for()
        tab.shot("passkey-refused-by-attestation-policy")
        model = re.search(r"authenticator model ([0-9a-f-]{36})", refusal.inner_text())
        assert model, refusal.inner_text()
        assert (
            server.scalar("SELECT count(*) FROM webauthn_credentials WHERE user_id = :u", u=user["id"]) == 0
        )

        async def allow() -> None:  # the tenant admin adds the model to the default list
            async with server.db.session() as session:
                await signin.set_policy(
                    session, admin.tenant_id, allowed_aaguids=[*signin.DEFAULT_ALLOWED, model.group(1)]
                )

        server.run(allow())
        tab.page.get_by_label("Name for the new passkey").fill("Test laptop")
        tab.page.get_by_role("button", name="Add a passkey").click()
        tab.page.locator(".notice").wait_for()
        assert "Test laptop" in tab.page.locator("#passkeys").inner_text()
        tab.shot("passkey-added")

        tab.context.clear_cookies()
        tab.callback = None
        tab.page.goto(app.authorize_url())
        tab.shot("sign-in-with-passkey")
        tab.page.get_by_role("button", name="Sign in with a passkey").click()
        tab.consent_if_asked()
        tokens = app.redeem(tab.code())
        assert tokens["id_token"]

        # The same passkey as the second factor after a password, when a policy wants MFA.
        with admin.client() as c:
            make_policy(c, "MFA for the passkey user", MFA, users={"includeUsers": [user["id"]]})
        tab.context.clear_cookies()
        tab.callback = None
        tab.sign_in_with_password(user["userPrincipalName"])
        tab.page.wait_for_url(re.compile(r".*/signin/mfa$"))
        tab.shot("mfa-with-passkey")
        tab.page.get_by_role("button", name="Use a passkey or security key").click()
        tab.consent_if_asked()
        assert app.redeem(tab.code())["id_token"]
    finally:
        tab.close()
    stored = server.rows(
        "SELECT aaguid, sign_count, last_used_at FROM webauthn_credentials WHERE user_id = :u", u=user["id"]
    )
    assert [(row[0], row[2] is not None) for row in stored] == [(model.group(1), True)]
    amr = server.rows(
        "SELECT amr FROM browser_sessions WHERE user_id = :u ORDER BY created_at DESC LIMIT 2", u=user["id"]
    )
    assert "pwd" in str(amr[0][0]) and "fido" in str(amr[0][0])  # password, then the passkey as MFA
    assert "pwd" not in str(amr[1][0]) and "fido" in str(amr[1][0])  # the passwordless sign-in


def test_confirmed_compromised_user_sees_the_block_page(
    browser: Any, shots: Path, server: TestServer, admin: TenantHandle
) -> None:
    app = App(server, admin, "Finance")
    with admin.client() as c:
        user = make_user(c, admin.domain, "risky.user")
        make_policy(c, "Block high user risk", BLOCK, userRiskLevels=["high"])
        confirmed = c.post(
            "/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [user["id"]]}
        )
        assert confirmed.status_code == 204
    tab = Tab(browser, shots, f"{server.backend}-blocked", app)
    try:
        tab.sign_in_with_password(user["userPrincipalName"])
        tab.page.wait_for_url(re.compile(r".*/signin/blocked$"))
        tab.shot("blocked")
        assert tab.page.locator("h1").inner_text() == "You cannot access this right now"
        correlation = tab.page.locator("#correlation-id").inner_text()
    finally:
        tab.close()
    assert tab.callback is None  # the app never got a code
    rows = server.rows(
        "SELECT error_code, correlation_id FROM sign_ins WHERE user_id = :u AND error_code = 53003",
        u=user["id"],
    )
    assert [(r[0], r[1]) for r in rows] == [(53003, correlation)]
