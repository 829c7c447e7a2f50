"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``/{tenant}/oauth2/v2.0/logout``.

The browser session ends (and every grant made in it) when the request proves it comes from the user's own
app — an ``id_token_hint`` this tenant signed for the signed-in user — or after the user confirms on a page
whose form carries a CSRF token; otherwise a third party could sign the user out with a link. The browser
returns to ``post_logout_redirect_uri`` only if it exactly matches a redirect URI of the app named by the
hint (or ``client_id``); anything else gets a page, never a redirect."""

from __future__ import annotations

from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from trustplane.core.errors import NotFound
from trustplane.directory.models import Application
from trustplane.directory.service import resolve_tenant
from trustplane.idp import sessions
from trustplane.idp.oauth import pages
from trustplane.idp.oauth.service import end_browser_session_grants, find_client
from trustplane.idp.oauth.wire import own_jwt, read_form, request_id, single_valued

_FIELDS = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")


def _bad(request: Request, message: str) -> Response:
    return pages.error_page("invalid_request", message, request_id=request_id(request))


async def logout(request: Request, session: AsyncSession, tenant: str) -> Response:
    try:
        tenant_row = await resolve_tenant(session, tenant)
    except NotFound:
        return pages.error_page("invalid_tenant", f"Tenant '{tenant}' not found.", status=404)
    try:
        if request.method == "POST":
            params = await read_form(request)
        else:
            params = single_valued(parse_qsl(request.url.query, keep_blank_values=True))
    except OAuth2Error as exc:
        return _bad(request, str(exc.description))
    tenant_id = tenant_row.id
    hint = None
    if params.get("id_token_hint"):
        hint = await own_jwt(request, session, tenant_id, params["id_token_hint"])
        if hint is None or not isinstance(hint.get("aud"), str):
            return _bad(request, "The id_token_hint is not an ID token this tenant issued.")
    client_id = params.get("client_id") or (hint or {}).get("aud")
    if params.get("client_id") and hint is not None and hint.get("aud") != params["client_id"]:
        return _bad(request, "The id_token_hint was issued to another application than client_id names.")
    client: Application | None = await find_client(session, tenant_id, str(client_id)) if client_id else None
    if client_id and client is None:
        return _bad(request, "The application (client_id) is not registered in this tenant.")
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        if client is None:
            return _bad(request, "post_logout_redirect_uri needs id_token_hint or client_id to name the app.")
        if target not in (client.redirect_uris or []):
            return _bad(request, "The post_logout_redirect_uri is not registered for the application.")
    browser = await sessions.current_session(session, tenant_id, request.cookies.get(sessions.SESSION_COOKIE))
    if browser is not None:
        vouched = hint is not None and hint.get("sub") == browser.user_id
        confirmed = request.method == "POST" and pages.csrf_ok(
            browser.secret_hash, "logout", params.get("csrf")
        )
        if not (vouched or confirmed):
            return pages.render(
                "logout.html",
                app_name=client.display_name if client is not None else "",
                action=request.url.path,
                csrf=pages.csrf_for(browser.secret_hash, "logout"),
                fields=[(name, params[name]) for name in _FIELDS if params.get(name)],
            )
        await sessions.revoke_session(session, browser, "signedOut")
        await end_browser_session_grants(session, tenant_id, browser.id, "signedOut")
    segment = str(request.path_params.get("tenant") or tenant_id)
    if target is not None:
        response: Response = pages.redirect(pages.with_params(target, {"state": params.get("state")}))
    else:
        response = pages.render("signed_out.html")
    sessions.clear_session_cookie(response, request, segment)
    return response
