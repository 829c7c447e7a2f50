"""Rendering of the sign-in pages (Jinja2, autoescaped) and what every page shares: the pre-auth cookie,
the relying party for WebAuthn, the request's facts, and the strict check of ``return_to``."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from trustplane.idp.signin.service import RequestFacts, csrf_token
from trustplane.idp.signin.webauthn import RelyingParty

FLOW_COOKIE = "tp_signin"
HERE = Path(__file__).parent
_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# Headers on every page: no framing (clickjacking), no caching of pages holding secrets, same-origin assets.
# No form-action: browsers apply it to the redirects after a submission too, and a finished sign-in ends in
# a redirect to the app's registered redirect URI on another origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,252}$")


def tenant_segment(request: Request, tenant_id: str) -> str:
    """The tenant as the URL names it (id or domain), so cookies' paths match the authorize endpoint's."""
    segment = str(request.path_params.get("tenant") or tenant_id)
    return segment if _SEGMENT.match(segment) else tenant_id


def base_path(segment: str) -> str:
    return f"/{segment}/signin"


def safe_return_to(value: str | None, segment: str) -> str | None:
    """A same-origin path under this tenant, or None. Refuses absolute and scheme-relative URLs, backslashes
    (browsers read ``/\\evil`` as ``//evil``), control characters, dot segments
    (plain or encoded) and anything outside ``/{tenant}/``: it can never send the browser to another site."""
    if not value or len(value) > 4096:
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or "\\" in value:
        return None
    if not value.startswith(f"/{segment}/") or value.startswith("//"):
        return None
    path = value.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path)
    if "\\" in decoded or "//" in decoded or any(p in ("..", ".") for p in decoded.split("/")):
        return None
    if "#" in value:
        return None
    return value


def login_url(segment: str, return_to: str | None) -> str:
    url = base_path(segment)
    return f"{url}?return_to={quote(return_to, safe='')}" if return_to else url


STAGE_PATHS = {
    "password": "",
    "mfa": "/mfa",
    "enrol_totp": "/totp",
    "password_change": "/password",
    "block": "/blocked",
    "blocked": "/blocked",
}


def stage_url(segment: str, stage: str) -> str:
    return base_path(segment) + STAGE_PATHS.get(stage, "")


def facts_of(request: Request) -> RequestFacts:
    host = request.client.host if request.client else None
    try:
        ip = str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        ip = None
    return RequestFacts(ip_address=ip, user_agent=(request.headers.get("user-agent") or "")[:512] or None)


def relying_party(request: Request) -> RelyingParty:
    """The WebAuthn relying party: from the configured public URL, else the request's own origin."""
    public = str(getattr(request.app.state.settings, "public_url", "") or "").rstrip("/")
    if public:
        scheme, _, rest = public.partition("://")
        host = rest.split("/", 1)[0]
        return RelyingParty(id=host.split(":", 1)[0], origin=f"{scheme}://{host}")
    origin = f"{request.url.scheme}://{request.url.netloc}"
    return RelyingParty(id=request.url.hostname or "localhost", origin=origin)


def _secure(request: Request) -> bool:
    host = (request.url.hostname or "").strip("[]")
    if request.url.scheme == "https":
        return True
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def set_flow_cookie(response: Response, request: Request, segment: str, token: str) -> None:
    response.set_cookie(
        FLOW_COOKIE,
        token,
        max_age=15 * 60,
        path=f"/{segment}/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def render(
    request: Request,
    template: str,
    *,
    segment: str,
    flow_token: str | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = _ENV.get_template(template).render(
        base=base_path(segment),
        csrf=csrf_token(flow_token) if flow_token else "",
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flow_token:
        set_flow_cookie(response, request, segment, flow_token)
    return response


def redirect(url: str, request: Request, segment: str, flow_token: str | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    if flow_token:
        set_flow_cookie(response, request, segment, flow_token)
    return response
