"""A form-posting browser for the sign-in pages (httpx with a cookie jar, no JavaScript) and helpers to set
up users and policies through Graph."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pyotp

from tests.support.server import TenantHandle

ADMIN = (
    "Directory.ReadWrite.All",
    "Policy.ReadWrite.ConditionalAccess",
    "AuditLog.Read.All",
    "IdentityRiskyUser.ReadWrite.All",
)
PASSWORD = "Correct-Horse-42"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


class Browser:
    """One browser: its own cookies, and the source address it claims (uvicorn trusts X-Forwarded-For
    from loopback, as a server behind a local proxy does)."""

    def __init__(self, tenant: TenantHandle, ip: str = "198.51.100.10") -> None:
        self.tenant = tenant
        self.base = f"/{tenant.tenant_id}/signin"
        self.http = httpx.Client(
            base_url=tenant.server.url,
            headers={"X-Forwarded-For": ip, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"},
            follow_redirects=False,
            timeout=30,
        )
        self.page: httpx.Response | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, **params: Any) -> httpx.Response:
        self.page = self.http.get(url, params=params or None)
        return self.page

    def csrf(self) -> str:
        assert self.page is not None
        match = _CSRF.search(self.page.text)
        assert match, f"no CSRF token on the page: {self.page.text[:300]}"
        return html.unescape(match.group(1))

    def post(self, url: str, data: dict[str, str], *, csrf: str | None = "page") -> httpx.Response:
        body = dict(data)
        if csrf == "page":
            body["csrf_token"] = self.csrf()
        elif csrf is not None:
            body["csrf_token"] = csrf
        response = self.http.post(url, data=body)
        if response.status_code != 303:
            self.page = response
        return response

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code in (302, 303), (response.status_code, response.text[:500])
        return self.get(response.headers["location"])

    def sign_in(self, username: str, password: str = PASSWORD, **params: Any) -> httpx.Response:
        self.get(self.base, **params)
        return self.post(self.base, {"username": username, "password": password})

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get("tp_session")


def make_user(c: httpx.Client, domain: str, alias: str, **extra: Any) -> dict[str, Any]:
    body = {
        "accountEnabled": True,
        "displayName": alias.title(),
        "mailNickname": alias,
        "userPrincipalName": f"{alias}@{domain}",
        "passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": False},
        **extra,
    }
    response = c.post("/v1.0/users", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_policy(c: httpx.Client, name: str, grant: dict[str, Any], **conditions: Any) -> dict[str, Any]:
    body = {
        "displayName": name,
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            **conditions,
        },
        "grantControls": grant,
    }
    response = c.post("/v1.0/identity/conditionalAccess/policies", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


MFA = {"operator": "OR", "builtInControls": ["mfa"]}
BLOCK = {"operator": "OR", "builtInControls": ["block"]}


def secret_on(page: httpx.Response) -> str:
    match = re.search(r'id="totp-secret"><code>([A-Z2-7 ]+)</code>', page.text)
    assert match, page.text[:500]
    return match.group(1).replace(" ", "")


def code_for(secret: str, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    import time

    return totp.at(time.time() + offset_steps * 30)


def recovery_codes_on(page: httpx.Response) -> list[str]:
    return re.findall(r"<li><code>([A-Z2-7-]{19})</code></li>", page.text)


def sign_ins(tenant: TenantHandle, upn: str) -> list[dict[str, Any]]:
    with tenant.client() as c:
        response = c.get("/v1.0/auditLogs/signIns", params={"$filter": f"userPrincipalName eq '{upn}'"})
    assert response.status_code == 200, response.text
    return list(response.json()["value"])
