"""The sign-in pages under ``/{tenant}/signin``: parse the form, check the CSRF token against the pre-auth
cookie, call the service, render the page or redirect. Public by nature (they are how a user
authenticates); the security-info pages need the browser session. Bad input answers an HTML page, never
JSON, except the WebAuthn options that the page's script fetches."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import DbSession
from trustplane.core.bodies import read_body
from trustplane.core.clock import utcnow
from trustplane.core.errors import NotFound, PayloadTooLarge
from trustplane.directory.models import User
from trustplane.directory.repository import UserRepository
from trustplane.directory.service import MIN_PASSWORD_LENGTH, resolve_tenant
from trustplane.idp import sessions
from trustplane.idp.contracts import ClientRef
from trustplane.idp.signin import pages, service, totp
from trustplane.idp.signin.models import SignInFlow
from trustplane.idp.signin.webauthn import WebAuthnError
from trustplane.protection.repository import SignInRepository

router = APIRouter(tags=["sign-in"])

PREFIX = "/{tenant}/signin"
# Every route here, for PUBLIC_ROUTES: pages a browser reaches before it has any credential, each form
# protected by the CSRF token; the security-info pages check the browser session themselves.
ROUTES = frozenset(
    {
        PREFIX,
        f"{PREFIX}/mfa",
        f"{PREFIX}/totp",
        f"{PREFIX}/password",
        f"{PREFIX}/blocked",
        f"{PREFIX}/passkey",
        f"{PREFIX}/passkey/options",
        f"{PREFIX}/security-info",
        f"{PREFIX}/security-info/passkey",
        f"{PREFIX}/security-info/passkey/options",
        f"{PREFIX}/security-info/recovery-codes",
        f"{PREFIX}/static/{{name}}",
    }
)
STATIC = {"signin.css": "text/css", "passkey.js": "text/javascript"}
MAX_FORM_FIELD = 8192


class _Page:
    """What every handler resolves first: the tenant, the URL's tenant segment, and the flow (if any)."""

    def __init__(self, request: Request, tenant_id: str, segment: str, flow: SignInFlow | None) -> None:
        self.request = request
        self.tenant_id = tenant_id
        self.segment = segment
        self.flow = flow
        self.token = request.cookies.get(pages.FLOW_COOKIE) if flow is not None else None

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        if self.flow is not None and "app_name" not in context:
            context["app_name"] = self.flow.app_display_name
        return pages.render(
            self.request, template, segment=self.segment, flow_token=self.token, status=status, **context
        )

    def message(self, heading: str, message: str, status: int, *, link: str | None = None) -> HTMLResponse:
        return pages.render(
            self.request,
            "message.html",
            segment=self.segment,
            status=status,
            heading=heading,
            message=message,
            link=link or pages.base_path(self.segment),
        )


async def _page(request: Request, session: AsyncSession, tenant: str) -> _Page | HTMLResponse:
    try:
        row = await resolve_tenant(session, tenant)
    except NotFound:
        return pages.render(
            request,
            "message.html",
            segment=tenant_id_safe(tenant),
            status=404,
            heading="Organisation not found",
            message="This sign-in address names no organisation. Check the link you followed.",
            link=None,
        )
    segment = pages.tenant_segment(request, row.id)
    flow = await service.flow_for(session, row.id, request.cookies.get(pages.FLOW_COOKIE))
    return _Page(request, row.id, segment, flow)


def tenant_id_safe(tenant: str) -> str:
    return tenant if pages._SEGMENT.match(tenant) else "common"


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form, read within the body limit (``PayloadTooLarge`` beyond it). Another content type,
    a malformed body, fields repeated, oversized or carrying U+0000 read as absent (the CSRF check or the
    step then refuses them as bad input)."""
    raw = await read_body(request)
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        return {}
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form or len(value) > MAX_FORM_FIELD or "\x00" in value:
            form[name] = ""
        else:
            form[name] = value
    return form


def _csrf_refused(page: _Page) -> HTMLResponse:
    return page.message(
        "This form has expired",
        "The form was not sent from this sign-in page (or it expired). Nothing was changed. Start again.",
        403,
    )


async def _checked(
    request: Request, session: AsyncSession, tenant: str, *stages: str
) -> tuple[_Page, dict[str, str]] | HTMLResponse:
    """A POST's page and form after the CSRF check (and, if given, that the flow is at one of ``stages``)."""
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    try:
        form = await _form(request)
    except PayloadTooLarge:
        return page.message("The form is too large", "The form sent is too large. Nothing was changed.", 413)
    if page.flow is None or not service.csrf_valid(page.token, form.get("csrf_token")):
        return _csrf_refused(page)
    if stages and page.flow.stage not in stages:
        return page.message("Your sign-in expired", "Please sign in again.", 400)
    return page, form


def _done(page: _Page, outcome: service.Outcome) -> Response:
    flow = page.flow
    assert flow is not None
    target = flow.return_to or f"{pages.base_path(page.segment)}/security-info"
    response = pages.redirect(target, page.request, page.segment, page.token)
    if outcome.cookie:
        sessions.set_session_cookie(response, page.request, page.segment, outcome.cookie)
    return response


def _follow(page: _Page, outcome: service.Outcome, retry: str, **context: Any) -> Response:
    """The response for a step's outcome: a redirect to the next stage, or the same page with its error."""
    if outcome.next == "done":
        return _done(page, outcome)
    if outcome.next == "retry":
        return page.render(retry, status=400, error=outcome.error, **context)
    return pages.redirect(pages.stage_url(page.segment, outcome.next), page.request, page.segment, page.token)


async def _user(session: AsyncSession, page: _Page) -> User | None:
    if page.flow is None or page.flow.user_id is None:
        return None
    return await UserRepository(session, page.tenant_id).get(page.flow.user_id)


# ---------------------------------------------------------------- password (first factor)


@router.get(PREFIX, summary="Sign-in page (user name and password, or a passkey)")
async def sign_in_page(
    tenant: str, request: Request, return_to: str | None = None, session: AsyncSession = DbSession
) -> Response:
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    target = pages.safe_return_to(return_to, page.segment) if return_to else None
    if return_to and target is None:
        return page.message(
            "This sign-in link is not valid",
            "The address to return to after signing in is not part of this site. Nothing was done.",
            400,
        )
    flow = page.flow
    username = ""
    if flow is None or flow.stage != "password" or (target is not None and flow.return_to != target):
        user_id = flow.user_id if flow is not None and flow.return_to == target else None
        client = None
        if flow is not None and flow.return_to == target and flow.client_id:
            client = ClientRef(flow.client_id, flow.application_id or "", flow.app_display_name or "")
        flow, token = await service.start_flow(
            session, page.tenant_id, return_to=target, client=client, user_id=user_id
        )
        page.flow, page.token = flow, token
    if flow.user_id:
        user = await UserRepository(session, page.tenant_id).get(flow.user_id)
        username = user.user_principal_name if user else ""
    return page.render("login.html", username=username)


@router.post(PREFIX, summary="Sign in with user name and password")
async def sign_in(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _checked(request, session, tenant, "password")
    if isinstance(checked, HTMLResponse):
        return checked
    page, form = checked
    assert page.flow is not None
    username = form.get("username", "")
    outcome = await service.password_step(
        session, page.tenant_id, page.flow, username, form.get("password", ""), pages.facts_of(request)
    )
    return _follow(page, outcome, "login.html", username=username)


# ---------------------------------------------------------------- second factor


async def _mfa_context(session: AsyncSession, page: _Page) -> dict[str, Any]:
    user = await _user(session, page)
    info = await service.security_info(session, page.tenant_id, user.id) if user else {}
    return {
        "username": user.user_principal_name if user else "",
        "has_totp": bool(info.get("totp")),
        "has_passkey": bool(info.get("passkeys")),
    }


@router.get(f"{PREFIX}/mfa", summary="Second-factor page")
async def mfa_page(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    if page.flow is None or page.flow.stage != "mfa":
        return page.message("Your sign-in expired", "Please sign in again.", 400)
    return page.render("mfa.html", **await _mfa_context(session, page))


@router.post(f"{PREFIX}/mfa", summary="Verify a TOTP or recovery code")
async def mfa(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _checked(request, session, tenant, "mfa")
    if isinstance(checked, HTMLResponse):
        return checked
    page, form = checked
    assert page.flow is not None
    code = form.get("code", "")
    if form.get("method") == "recovery":
        outcome = await service.recovery_step(session, page.tenant_id, page.flow, code)
    else:
        outcome = await service.totp_step(session, page.tenant_id, page.flow, code)
    return _follow(page, outcome, "mfa.html", **await _mfa_context(session, page))


@router.get(f"{PREFIX}/totp", summary="Set up an authenticator app")
async def totp_page(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    if page.flow is None or page.flow.stage not in ("enrol_totp", "security_info"):
        return page.message("Your sign-in expired", "Please sign in again.", 400)
    if page.flow.stage == "security_info":
        user = await _signed_in_user(session, page)
        if user is None or not await _may_change_methods(session, page, user):
            return page.message("Sign in first", "Sign in again to change your security info.", 401)
    return await _totp_render(session, page)


async def _totp_render(session: AsyncSession, page: _Page, error: str | None = None) -> Response:
    assert page.flow is not None
    shown = await service.begin_totp_enrolment(session, page.tenant_id, page.flow)
    if shown is None:
        return page.message("Your sign-in expired", "Please sign in again.", 400)
    secret, uri = shown
    return page.render(
        "totp.html",
        status=400 if error else 200,
        error=error,
        secret=secret,
        secret_grouped=totp.grouped(secret),
        uri=uri,
        required=page.flow.stage == "enrol_totp",
    )


@router.post(f"{PREFIX}/totp", summary="Confirm the authenticator app with a code")
async def totp_confirm(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _checked(request, session, tenant, "enrol_totp", "security_info")
    if isinstance(checked, HTMLResponse):
        return checked
    page, form = checked
    assert page.flow is not None
    if page.flow.stage == "security_info":
        user = await _signed_in_user(session, page)
        if user is None or not await _may_change_methods(session, page, user):
            return page.message("Sign in first", "Sign in again to change your security info.", 401)
    outcome, codes = await service.confirm_totp_enrolment(
        session, page.tenant_id, page.flow, form.get("code", "")
    )
    if outcome.next == "retry":
        return await _totp_render(session, page, outcome.error)
    if outcome.next == "done":
        next_url = page.flow.return_to or f"{pages.base_path(page.segment)}/security-info"
    elif outcome.next == "security_info":
        next_url = f"{pages.base_path(page.segment)}/security-info"
    else:
        next_url = pages.stage_url(page.segment, outcome.next)
    response = page.render("recovery_codes.html", codes=codes, next_url=next_url)
    if outcome.cookie:
        sessions.set_session_cookie(response, request, page.segment, outcome.cookie)
    return response


# ---------------------------------------------------------------- password change


async def _password_context(session: AsyncSession, page: _Page) -> dict[str, Any]:
    user = await _user(session, page)
    return {
        "username": user.user_principal_name if user else "",
        "forced": bool(user and user.force_change_password),
        "min_length": MIN_PASSWORD_LENGTH,
    }


@router.get(f"{PREFIX}/password", summary="Change your password (required by policy)")
async def password_page(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    if page.flow is None or page.flow.stage != "password_change":
        return page.message("Your sign-in expired", "Please sign in again.", 400)
    return page.render("password.html", **await _password_context(session, page))


@router.post(f"{PREFIX}/password", summary="Change your password")
async def password_change(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _checked(request, session, tenant, "password_change")
    if isinstance(checked, HTMLResponse):
        return checked
    page, form = checked
    assert page.flow is not None
    outcome = await service.password_change_step(
        session,
        page.tenant_id,
        page.flow,
        form.get("current_password", ""),
        form.get("new_password", ""),
        form.get("confirm_password", ""),
    )
    return _follow(page, outcome, "password.html", **await _password_context(session, page))


# ---------------------------------------------------------------- block page


@router.get(f"{PREFIX}/blocked", summary="Access blocked by conditional access")
async def blocked_page(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    if page.flow is None or page.flow.stage != "blocked":
        return page.message("Your sign-in expired", "Please sign in again.", 400)
    sign_in = await SignInRepository(session, page.tenant_id).get(page.flow.sign_in_id or "")
    return page.render(
        "blocked.html",
        status=403,
        correlation_id=sign_in.correlation_id if sign_in else page.flow.id,
        request_id=getattr(request.state, "request_id", ""),
        at=utcnow().isoformat(timespec="seconds"),
    )


# ---------------------------------------------------------------- passkeys


def _json_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


@router.post(f"{PREFIX}/passkey/options", summary="WebAuthn assertion options (for the page's script)")
async def passkey_options(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _checked(request, session, tenant, "password", "mfa")
    if isinstance(checked, HTMLResponse):
        return _json_error("The form has expired; reload the page.", 403)
    page, _ = checked
    assert page.flow is not None
    options = await service.passkey_options(session, page.tenant_id, page.flow, pages.relying_party(request))
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post(f"{PREFIX}/passkey", summary="Sign in with a passkey")
async def passkey_sign_in(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _checked(request, session, tenant, "password", "mfa")
    if isinstance(checked, HTMLResponse):
        return checked
    page, form = checked
    assert page.flow is not None
    stage = page.flow.stage
    outcome = await service.passkey_step(
        session,
        page.tenant_id,
        page.flow,
        form.get("credential", ""),
        pages.relying_party(request),
        pages.facts_of(request),
    )
    if outcome.next == "retry" and stage == "mfa":
        return _follow(page, outcome, "mfa.html", **await _mfa_context(session, page))
    return _follow(page, outcome, "login.html", username="")


# ---------------------------------------------------------------- security info (signed in)


async def _signed_in_user(session: AsyncSession, page: _Page) -> User | None:
    """The user of the live browser session, when it is the flow's user."""
    browser = await sessions.current_session(
        session, page.tenant_id, page.request.cookies.get(sessions.SESSION_COOKIE)
    )
    if browser is None or (page.flow is not None and page.flow.user_id not in (None, browser.user_id)):
        return None
    return await UserRepository(session, page.tenant_id).get(browser.user_id)


@router.get(f"{PREFIX}/security-info", summary="Your sign-in methods (needs a browser session)")
async def security_info_page(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    page = await _page(request, session, tenant)
    if isinstance(page, HTMLResponse):
        return page
    browser = await sessions.current_session(
        session, page.tenant_id, request.cookies.get(sessions.SESSION_COOKIE)
    )
    if browser is None:
        here = f"{pages.base_path(page.segment)}/security-info"
        return pages.redirect(pages.login_url(page.segment, here), request, page.segment)
    user = await UserRepository(session, page.tenant_id).get(browser.user_id)
    if user is None:
        return page.message("Sign in first", "Sign in to change your security info.", 401)
    if "mfa" not in (browser.amr or []) and await service.has_second_factor(session, page.tenant_id, user.id):
        here = f"{pages.base_path(page.segment)}/security-info"
        _, token = await service.start_step_up(session, page.tenant_id, browser, here)
        return pages.redirect(pages.stage_url(page.segment, "mfa"), request, page.segment, token)
    if page.flow is None or page.flow.stage != "security_info" or page.flow.user_id != user.id:
        flow, token = await service.start_flow(session, page.tenant_id, return_to=None, user_id=user.id)
        flow.stage = "security_info"
        flow.session_id = browser.id
        page.flow, page.token = flow, token
    return page.render(
        "security_info.html",
        username=user.user_principal_name,
        info=await service.security_info(session, page.tenant_id, user.id),
        app_name=None,
    )


async def _security_checked(
    request: Request, session: AsyncSession, tenant: str
) -> tuple[_Page, dict[str, str], User] | HTMLResponse:
    checked = await _checked(request, session, tenant, "security_info")
    if isinstance(checked, HTMLResponse):
        return checked
    page, form = checked
    user = await _signed_in_user(session, page)
    if user is None or not await _may_change_methods(session, page, user):
        return page.message("Sign in first", "Sign in again to change your security info.", 401)
    return page, form, user


async def _may_change_methods(session: AsyncSession, page: _Page, user: User) -> bool:
    """A user who has a second factor changes methods only from a session that used one."""
    browser = await sessions.current_session(
        session, page.tenant_id, page.request.cookies.get(sessions.SESSION_COOKIE)
    )
    if browser is None:
        return False
    return "mfa" in (browser.amr or []) or not await service.has_second_factor(
        session, page.tenant_id, user.id
    )


@router.post(f"{PREFIX}/security-info/passkey/options", summary="WebAuthn registration options")
async def register_options(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _security_checked(request, session, tenant)
    if isinstance(checked, HTMLResponse):
        return _json_error("Sign in again to add a passkey.", checked.status_code)
    page, _, user = checked
    assert page.flow is not None
    options = await service.passkey_registration_options(
        session, page.tenant_id, page.flow, user, pages.relying_party(request)
    )
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post(f"{PREFIX}/security-info/passkey", summary="Register a passkey")
async def register_passkey(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _security_checked(request, session, tenant)
    if isinstance(checked, HTMLResponse):
        return checked
    page, form, user = checked
    assert page.flow is not None
    extra = list(getattr(request.app.state.settings, "webauthn_extra_aaguids", []) or [])
    try:
        credential = await service.register_passkey(
            session,
            page.tenant_id,
            page.flow,
            user,
            form.get("credential", ""),
            form.get("name", ""),
            pages.relying_party(request),
            extra,
        )
    except WebAuthnError as exc:
        return page.render(
            "security_info.html",
            status=400,
            error=str(exc),
            username=user.user_principal_name,
            info=await service.security_info(session, page.tenant_id, user.id),
            app_name=None,
        )
    return page.render(
        "security_info.html",
        notice=f"Passkey '{credential.display_name}' added.",
        username=user.user_principal_name,
        info=await service.security_info(session, page.tenant_id, user.id),
        app_name=None,
    )


@router.post(f"{PREFIX}/security-info/recovery-codes", summary="Make new recovery codes")
async def new_recovery_codes(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    checked = await _security_checked(request, session, tenant)
    if isinstance(checked, HTMLResponse):
        return checked
    page, _, user = checked
    codes = await service.issue_recovery_codes(session, page.tenant_id, user.id)
    return page.render(
        "recovery_codes.html", codes=codes, next_url=f"{pages.base_path(page.segment)}/security-info"
    )


# ---------------------------------------------------------------- static assets


@router.get(f"{PREFIX}/static/{{name}}", summary="The sign-in pages' own CSS and script")
async def static(tenant: str, name: str) -> Response:
    if name not in STATIC:
        return Response("Not found", status_code=404, media_type="text/plain")
    return FileResponse(
        pages.HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
