"""The authorization server's routes in Entra's path shape: ``/{tenant}/oauth2/v2.0/authorize``, ``/token``,
``/revoke``, ``/introspect``, ``/logout``, ``/{tenant}/openid/userinfo`` and the OpenID discovery document.
Public by nature (they are how callers and users get authenticated; each authenticates what it needs
itself). JSON errors follow RFC 6749 / 6750; browser errors are HTML pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidRequestError,
    OAuth2Error,
)
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import DbSession, base_url
from trustplane.auth.keys import ALGORITHM
from trustplane.auth.tokens import issuer_for, verify_access_token
from trustplane.core.errors import ClaimsChallenge, NotFound, Unauthenticated
from trustplane.directory.models import Tenant
from trustplane.directory.repository import UserRepository
from trustplane.directory.service import resolve_tenant
from trustplane.idp import sessions
from trustplane.idp.contracts import Authenticated, ClientRef
from trustplane.idp.oauth import pages
from trustplane.idp.oauth.grants import TokenContext
from trustplane.idp.oauth.logout import logout as run_logout
from trustplane.idp.oauth.server import (
    authorization_response,
    endpoint_response,
    token_response,
    validate_authorization_request,
)
from trustplane.idp.oauth.service import (
    GRANT_TYPES,
    AuthorizationRequest,
    AuthorizationRequestError,
    RedirectableError,
    has_consent,
    record_user_consent,
)
from trustplane.idp.oauth.wire import (
    client_credentials,
    oauth_error,
    read_form,
    render_oauth_error,
    request_id,
    single_valued,
)

router = APIRouter(tags=["oauth2"])
# Every route here is public: each is how an app or a user gets authenticated, and each checks what it
# needs itself (client authentication, a bearer token, the browser session with a CSRF token).
AUTHORIZATION_SERVER_ROUTES = frozenset(
    {
        "/{tenant}/oauth2/v2.0/authorize",
        "/{tenant}/oauth2/v2.0/authorize/consent",
        "/{tenant}/oauth2/v2.0/token",
        "/{tenant}/oauth2/v2.0/revoke",
        "/{tenant}/oauth2/v2.0/introspect",
        "/{tenant}/oauth2/v2.0/logout",
        "/{tenant}/openid/userinfo",
        "/{tenant}/v2.0/.well-known/openid-configuration",
    }
)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _tenant(session: AsyncSession, key: str) -> Tenant:
    try:
        return await resolve_tenant(session, key)
    except NotFound as exc:
        raise InvalidRequestError(description=f"Tenant '{key}' not found.") from exc


def _context(request: Request, session: AsyncSession, tenant: Tenant) -> TokenContext:
    settings = request.app.state.settings
    return TokenContext(
        session=session,
        keys=request.app.state.keys,
        tenant_id=tenant.id,
        issuer_base=base_url(request),
        audiences=list(settings.audiences),
        lifetime_seconds=settings.access_token_lifetime_seconds,
    )


# ---------------------------------------------------------------- token


@router.post(
    "/{tenant}/oauth2/v2.0/token", summary="OAuth 2.0 token endpoint (code, refresh, client credentials)"
)
async def token(tenant: str, request: Request, session: AsyncSession = DbSession) -> JSONResponse:
    """The grants run on Authlib's server (``server.py``); the body is read and checked here first."""
    try:
        fields = await read_form(request)
        client_credentials(request, fields)  # one client authentication method, not two
        tenant_row = await _tenant(session, tenant)
    except OAuth2Error as exc:
        return render_oauth_error(exc)
    headers = (
        {"Authorization": request.headers["authorization"]} if "authorization" in request.headers else {}
    )
    # The session still commits after an error response: a reuse revokes its family.
    return await token_response(
        _context(request, session, tenant_row), uri=str(request.url), headers=headers, form=fields
    )


# ---------------------------------------------------------------- authorize


def _query_params(request: Request) -> dict[str, str]:
    return single_valued(parse_qsl(request.url.query, keep_blank_values=True))


@router.get(
    "/{tenant}/oauth2/v2.0/authorize",
    summary="OAuth 2.0 / OIDC authorization endpoint",
    operation_id="authorize_get",
)
@router.post(
    "/{tenant}/oauth2/v2.0/authorize",
    summary="OAuth 2.0 / OIDC authorization endpoint (form post)",
    operation_id="authorize_post",
)
async def authorize(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    if request.method == "POST":  # OIDC Core 3.1.2.1: POST is the same request; answer it as a GET
        try:
            form = await read_form(request)
        except OAuth2Error as exc:
            return pages.error_page(str(exc.error), str(exc.description), request_id=request_id(request))
        return pages.redirect(f"{request.url.path}?{urlencode(form)}", status=303)
    try:
        params = _query_params(request)
        tenant_row = await _tenant(session, tenant)
    except OAuth2Error as exc:
        return pages.error_page(str(exc.error), str(exc.description), request_id=request_id(request))
    try:
        areq = await validate_authorization_request(_context(request, session, tenant_row), params)
    except AuthorizationRequestError as exc:
        return pages.error_page("invalid_request", exc.description, request_id=request_id(request))
    except RedirectableError as exc:
        # validate_authorization_request checked the client and its redirect URI before raising this
        error = exc.error
        return _redirect_error(
            request, tenant_row, error.error, error.description, params["redirect_uri"], exc.state
        )
    return await _authorize_valid(request, session, tenant_row, areq)


def _authorization_response(
    request: Request, tenant_row: Tenant, redirect_uri: str, **params: Any
) -> Response:
    """A redirect to the client with the response's parameters and, RFC 9207, this authority's ``iss``
    (so a client talking to several can tell which one answered: mix-up attacks)."""
    iss = issuer_for(base_url(request), tenant_row.id)
    return pages.redirect(pages.with_params(redirect_uri, {**params, "iss": iss}))


def _redirect_error(
    request: Request, tenant_row: Tenant, error: Any, description: Any, redirect_uri: str, state: str | None
) -> Response:
    return _authorization_response(
        request,
        tenant_row,
        redirect_uri,
        error=str(error),
        error_description=str(description or error),
        state=state,
    )


async def _authorize_valid(
    request: Request, session: AsyncSession, tenant_row: Tenant, areq: AuthorizationRequest
) -> Response:
    from trustplane.idp.signin.gate import InteractionRequired, sign_in_gate  # the sign-in half (idp/signin)

    client = areq.client
    try:
        outcome = await sign_in_gate(
            request,
            session,
            tenant_id=tenant_row.id,
            client=ClientRef(
                client_id=client.app_id, application_id=client.id, display_name=client.display_name
            ),
            prompt=areq.prompt,
            max_age=areq.max_age,
        )
    except InteractionRequired as exc:
        return _redirect_error(request, tenant_row, exc.error, exc.description, areq.redirect_uri, areq.state)
    if not isinstance(outcome, Authenticated):
        return outcome  # the sign-in, step-up or block page
    prompts = set((areq.prompt or "").split())
    consented = await has_consent(session, tenant_row.id, client.id, outcome.user_id, areq.scope.all)
    if "consent" in prompts or not consented:
        if "none" in prompts:
            return _redirect_error(
                request,
                tenant_row,
                "consent_required",
                "The user must consent.",
                areq.redirect_uri,
                areq.state,
            )
        return await _consent_page(request, session, tenant_row, areq, outcome)
    return await authorization_response(areq, outcome)


_SCOPE_TEXT = {
    "openid": "Sign you in",
    "profile": "View your basic profile (name and user name)",
    "email": "View your email address",
    "offline_access": "Maintain access to data you have given it access to",
}


async def _consent_page(
    request: Request,
    session: AsyncSession,
    tenant_row: Tenant,
    areq: AuthorizationRequest,
    who: Authenticated,
) -> Response:
    browser = await sessions.BrowserSessionRepository(session, tenant_row.id).get(who.session_id)
    user = await UserRepository(session, tenant_row.id).get(who.user_id)
    if browser is None or user is None:
        return pages.error_page("login_required", "Your session ended; sign in again.", status=401)
    items = [_SCOPE_TEXT.get(s, f"Access {s}") for s in areq.scope.all]
    return pages.render(
        "consent.html",
        app_name=areq.client.display_name,
        scopes=items,
        user_name=user.user_principal_name,
        action=f"{request.url.path}/consent",
        csrf=pages.csrf_for(browser.secret_hash, f"consent:{areq.client.app_id}"),
        request_query=request.url.query,
    )


@router.post("/{tenant}/oauth2/v2.0/authorize/consent", summary="The user's answer on the consent page")
async def consent(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    try:
        form = await read_form(request)
        tenant_row = await _tenant(session, tenant)
        params = single_valued(parse_qsl(form.get("request", ""), keep_blank_values=True))
    except OAuth2Error as exc:
        return pages.error_page(str(exc.error), str(exc.description), request_id=request_id(request))
    try:
        areq = await validate_authorization_request(_context(request, session, tenant_row), params)
    except (AuthorizationRequestError, RedirectableError) as exc:
        text = exc.description if isinstance(exc, AuthorizationRequestError) else str(exc.error.description)
        return pages.error_page("invalid_request", text, request_id=request_id(request))
    browser = await sessions.current_session(
        session, tenant_row.id, request.cookies.get(sessions.SESSION_COOKIE)
    )
    purpose = f"consent:{areq.client.app_id}"
    if browser is None or not pages.csrf_ok(browser.secret_hash, purpose, form.get("csrf")):
        return pages.error_page(
            "invalid_request", "The form expired or did not come from this site; start again.", status=403
        )
    if form.get("decision") != "allow":
        denied = AccessDeniedError(description="The user declined to consent.")
        return _redirect_error(
            request, tenant_row, denied.error, denied.description, areq.redirect_uri, areq.state
        )
    await record_user_consent(session, tenant_row.id, areq.client.id, browser.user_id, areq.scope.all)
    params.pop("prompt", None)  # consent given: the repeated request must not ask again
    authorize_path = request.url.path.removesuffix("/consent")
    return pages.redirect(f"{authorize_path}?{urlencode(params)}", status=303)


# ---------------------------------------------------------------- userinfo


def _bearer_error(status: int, error: str, description: str, challenge: str | None = None) -> JSONResponse:
    header = challenge or f'Bearer error="{error}", error_description="{description}"'
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, "WWW-Authenticate": header},
    )


@router.get("/{tenant}/openid/userinfo", summary="OpenID Connect UserInfo", operation_id="userinfo_get")
@router.post("/{tenant}/openid/userinfo", summary="OpenID Connect UserInfo", operation_id="userinfo_post")
async def userinfo(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return JSONResponse(
            {"error": "invalid_token", "error_description": "A bearer access token is required."},
            status_code=401,
            headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="trustplane"'},
        )
    settings = request.app.state.settings
    try:
        tenant_row = await resolve_tenant(session, tenant)
        principal = await verify_access_token(
            session,
            request.app.state.keys,
            credential.strip(),
            issuer_base=base_url(request),
            audiences=list(settings.audiences),
        )
    except ClaimsChallenge as exc:
        return _bearer_error(401, "insufficient_claims", exc.message, exc.www_authenticate)
    except (Unauthenticated, NotFound) as exc:
        return _bearer_error(401, "invalid_token", exc.message)
    if principal.tenant_id != tenant_row.id:
        return _bearer_error(401, "invalid_token", "The token was issued by another tenant.")
    if principal.kind != "user" or "openid" not in principal.scopes:
        return _bearer_error(
            403, "insufficient_scope", "UserInfo needs a user's token with the openid scope."
        )
    user = await UserRepository(session, tenant_row.id).get(principal.id)
    if user is None:
        return _bearer_error(401, "invalid_token", "The token's user no longer exists.")
    claims: dict[str, Any] = {"sub": user.id, "oid": user.id, "tid": tenant_row.id}
    if "profile" in principal.scopes:
        claims.update(
            name=user.display_name,
            given_name=user.given_name,
            family_name=user.surname,
            preferred_username=user.user_principal_name,
        )
    if "email" in principal.scopes and user.mail:
        claims["email"] = user.mail
    return JSONResponse({k: v for k, v in claims.items() if v is not None}, headers=NO_STORE)


# ---------------------------------------------------------------- revocation / introspection


async def _on_authlib(name: str, tenant: str, request: Request, session: AsyncSession) -> JSONResponse:
    try:
        fields = await read_form(request)
        client_credentials(request, fields)  # one client authentication method, not two
        tenant_row = await _tenant(session, tenant)
    except OAuth2Error as exc:
        return render_oauth_error(exc)
    authorization = request.headers.get("authorization")
    headers = {"Authorization": authorization} if authorization else {}
    ctx = _context(request, session, tenant_row)
    return await endpoint_response(name, ctx, request, headers=headers, form=fields)


@router.post("/{tenant}/oauth2/v2.0/revoke", summary="Token revocation (RFC 7009)")
async def revoke(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    """Authlib's RevocationEndpoint (``server.Revocation``)."""
    return await _on_authlib("revocation", tenant, request, session)


@router.post("/{tenant}/oauth2/v2.0/introspect", summary="Token introspection (RFC 7662)")
async def introspect(tenant: str, request: Request, session: AsyncSession = DbSession) -> JSONResponse:
    """Authlib's IntrospectionEndpoint (``server.Introspection``)."""
    return await _on_authlib("introspection", tenant, request, session)


# ---------------------------------------------------------------- logout


@router.get("/{tenant}/oauth2/v2.0/logout", summary="RP-initiated logout", operation_id="logout_get")
@router.post(
    "/{tenant}/oauth2/v2.0/logout", summary="RP-initiated logout (form post)", operation_id="logout_post"
)
async def logout(tenant: str, request: Request, session: AsyncSession = DbSession) -> Response:
    return await run_logout(request, session, tenant)


# ---------------------------------------------------------------- discovery


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", summary="OpenID Connect discovery document")
async def openid_configuration(
    tenant: str, request: Request, session: AsyncSession = DbSession
) -> JSONResponse:
    try:
        tenant_row = await resolve_tenant(session, tenant)
    except NotFound:
        return oauth_error(404, "invalid_tenant", f"Tenant '{tenant}' not found.")
    base = base_url(request)
    audiences = list(request.app.state.settings.audiences)
    prefix = f"{base}/{tenant_row.id}"
    doc = {
        "issuer": issuer_for(base, tenant_row.id),
        "authorization_endpoint": f"{prefix}/oauth2/v2.0/authorize",
        "token_endpoint": f"{prefix}/oauth2/v2.0/token",
        "userinfo_endpoint": f"{prefix}/openid/userinfo",
        "end_session_endpoint": f"{prefix}/oauth2/v2.0/logout",
        "revocation_endpoint": f"{prefix}/oauth2/v2.0/revoke",
        "introspection_endpoint": f"{prefix}/oauth2/v2.0/introspect",
        "jwks_uri": f"{prefix}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "subject_types_supported": ["public"],
        "acr_values_supported": ["urn:trustplane:acr:1fa", "urn:trustplane:acr:mfa"],
        "scopes_supported": [
            "openid",
            "profile",
            "email",
            "offline_access",
            *(f"{a}/.default" for a in audiences),
        ],
        "claims_supported": [
            "iss",
            "aud",
            "sub",
            "oid",
            "tid",
            "azp",
            "appid",
            "roles",
            "scp",
            "iat",
            "nbf",
            "exp",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "sid",
            "at_hash",
            "name",
            "preferred_username",
            "email",
        ],
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "frontchannel_logout_supported": False,
        "tenant_region_scope": None,
    }
    return JSONResponse(doc)
