"""TrustPlane's authorization server on Authlib: an ``AuthorizationServer`` subclass with the three token
grants (``grants.py``), RFC 7636 PKCE and the OpenID Connect ID token, bridged to our async stack.

The bridge: the route reads and checks the body first (async, ``wire.read_form``: urlencoded, every
parameter once, size-capped), then hands Authlib a prepared ``OAuth2Request`` and runs the synchronous
server inside ``sqlalchemy.util.greenlet_spawn``; Authlib's callbacks (``query_client``, the grants' code
and refresh-token lookups, the client's secret check) await the async repositories with ``await_only``.
One server per request: it carries the request's tenant context, and building one costs a few list
appends. Errors leave in our wire's RFC 6749 dialect (``wire.oauth_error``: 401 for ``invalid_client``,
``no-store``); the session still commits after an error, because a reuse revokes its family.

On Authlib: the token endpoint's grants, revocation, introspection, and the authorize endpoint's
validation and code issuance (the sign-in gate and consent, TrustPlane's, run between the two). Not on
Authlib, and why: UserInfo and the resource faces verify our JWTs with CAE (``auth.tokens``), which
Authlib's resource protector would only wrap; RP-initiated logout ends TrustPlane's browser sessions and
grant families (``logout.py``); discovery and JWKS with key rotation are documents of our key store.

Transport security is the deployment's (TLS at the edge, its ``base_url``): Authlib's ``http`` refusal
would reject a TLS-terminating proxy's plain hop, so the request is built without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.util import greenlet_spawn

from trustplane.auth.service import client_secret_matches
from trustplane.auth.tokens import issuer_for
from trustplane.core.clock import utcnow
from trustplane.directory.models import Application
from trustplane.idp.contracts import Authenticated
from trustplane.idp.oauth import pages
from trustplane.idp.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    IdToken,
    RefreshTokenGrant,
    S256CodeChallenge,
    TokenContext,
    wait,
)
from trustplane.idp.oauth.introspection import introspect_token
from trustplane.idp.oauth.repository import GrantRepository, RefreshTokenRepository
from trustplane.idp.oauth.service import (
    GRANT_TYPES,
    AuthorizationRequest,
    AuthorizationRequestError,
    RedirectableError,
    check_authorization_request,
    digest,
    find_client,
)
from trustplane.idp.oauth.wire import oauth_error, own_jwt

_DESCRIPTIONS = {  # for Authlib errors raised without a description
    "invalid_client": "Invalid client credentials.",
    "invalid_grant": "The grant is invalid, expired, revoked or was already used.",
    "invalid_scope": "The requested scope is invalid.",
    "unsupported_grant_type": f"The grant type is not supported; use {', '.join(GRANT_TYPES)}.",
    "unauthorized_client": "The application is not allowed to use this grant type.",
    "invalid_request": "The request body must contain the parameter 'token'.",
    "unsupported_token_type": "The token_type_hint must be access_token or refresh_token.",
}


class OAuthClient(ClientMixin):
    """An app registration as Authlib's client: exact redirect URIs, its allowed grant types, a secret
    for a confidential client and none for a public one."""

    def __init__(self, app: Application, ctx: TokenContext) -> None:
        self.app = app
        self.ctx = ctx
        self.client_id = app.app_id
        self.signing_key: Any = None  # the tenant's active key, set when tokens are minted

    def get_client_id(self) -> str:
        return self.app.app_id

    def get_default_redirect_uri(self) -> None:
        return None  # every request names its redirect URI, matched exactly

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.app.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(
            wait(client_secret_matches(self.ctx.session, self.ctx.tenant_id, self.app, client_secret))
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.app.is_public_client:
            return method == "none" and endpoint != "introspection"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in (self.app.grant_types or [])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.app.grant_types or [])


class FormRequest(OAuth2Request):
    """An OAuth2Request over a body that was already read and checked."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], form: dict[str, str]) -> None:
        # OAuth2Request.__init__ minus its transport check (see the module docstring).
        self.method, self.uri, self.headers = method, uri, headers
        self._body = None
        self.client = self.auth_method = self.user = None
        self.authorization_code = self.refresh_token = self.credential = None
        self._scope = None
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


def _authorization_policy(grant: Any) -> None:
    """TrustPlane's rules on an authorization request, run by Authlib after it validated the client, the
    redirect URI and the response type (so Authlib sends their errors to the redirect URI)."""

    def check(grant: Any, redirect_uri: str) -> None:
        client: OAuthClient = grant.request.client
        grant.request.tp_scope = check_authorization_request(
            client.app, grant.request.payload.data, client.ctx.audiences
        )

    grant.register_hook("after_validate_authorization_request_payload", check)


@dataclass
class PresentedToken:
    """A token presented to revocation or introspection: its grant family (a refresh token, or a user's
    access token through its ``tp_grant`` claim) or, an app's access token, none."""

    value: str
    application_id: str | None  # the app it was issued to, None when it is not ours
    grant_id: str | None
    app_token: bool = False
    answer: dict[str, Any] | None = None  # introspection's, computed for the asking client

    def check_client(self, client: OAuthClient) -> bool:
        return self.application_id == client.app.id

    def is_expired(self) -> bool:
        return False  # introspection.introspect_token judged expiry and revocation already

    def is_revoked(self) -> bool:
        return False


def _presented(server: TrustPlaneAuthorizationServer, value: str) -> PresentedToken:
    ctx = server.ctx
    row = wait(RefreshTokenRepository(ctx.session, ctx.tenant_id).by_hash(digest(value)))
    if row is not None:
        grant = wait(GrantRepository(ctx.session, ctx.tenant_id).get(row.grant_id))
        return PresentedToken(value, grant.application_id if grant else None, row.grant_id)
    claims = (
        wait(own_jwt(server.http_request, ctx.session, ctx.tenant_id, value)) if server.http_request else None
    )
    if claims is None:
        return PresentedToken(value, None, None)
    app = wait(find_client(ctx.session, ctx.tenant_id, str(claims.get("azp") or "")))
    grant_id = claims.get("tp_grant") if isinstance(claims.get("tp_grant"), str) else None
    return PresentedToken(value, app.id if app else None, grant_id, app_token=claims.get("idtyp") != "user")


class Revocation(RevocationEndpoint):
    """RFC 7009 on Authlib's endpoint: a refresh token or a user's access token ends its whole grant
    family. An unknown token, or another client's, is answered 200 and revokes nothing (2.2: the client
    learns nothing about tokens not its own)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def authenticate_token(self, request: Any, client: OAuthClient) -> PresentedToken | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if not token.check_client(client):
            return None
        if token.app_token:
            raise OAuth2Error(
                error="unsupported_token_type",
                description="App tokens cannot be revoked; they expire within their lifetime.",
            )
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken:
        return _presented(self.server, token_string)

    def revoke_token(self, token: PresentedToken, request: Any) -> None:
        if token.grant_id is not None:
            ctx = self.server.ctx
            wait(
                GrantRepository(ctx.session, ctx.tenant_id).revoke(
                    [token.grant_id], "revokedByClient", utcnow()
                )
            )


class Introspection(IntrospectionEndpoint):
    """RFC 7662 on Authlib's endpoint, for confidential clients only; whether a token is active is
    TrustPlane's judgement (``introspection.py``: the checks a resource API makes, CAE included)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken:
        return PresentedToken(token_string, None, None)

    def check_permission(self, token: PresentedToken, client: OAuthClient, request: Any) -> bool:
        server = self.server
        ctx = server.ctx
        token.answer = wait(
            introspect_token(server.http_request, ctx.session, ctx.tenant_id, client.app, token.value)
        )
        return bool(token.answer.get("active"))

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        return dict(token.answer or {"active": False})


class TrustPlaneAuthorizationServer(AuthorizationServer):
    def __init__(self, ctx: TokenContext, http_request: Request | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.http_request = http_request  # the Starlette request, for the issuer and keys of own_jwt
        self.register_grant(
            AuthorizationCodeGrant, [S256CodeChallenge(required=True), IdToken(), _authorization_policy]
        )
        self.register_grant(RefreshTokenGrant, [IdToken()])
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def query_client(self, client_id: str) -> OAuthClient | None:
        app = wait(find_client(self.ctx.session, self.ctx.tenant_id, client_id or ""))
        return OAuthClient(app, self.ctx) if app is not None else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Nothing to save: a refresh token's row is written when it is minted, access tokens are JWTs."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers."""

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        location = dict(headers or []).get("Location")
        if status == 302 and location:  # an authorization response: RFC 9207's iss on every one
            iss = issuer_for(self.ctx.issuer_base, self.ctx.tenant_id)
            return pages.redirect(pages.with_params(location, {"iss": iss}))
        if isinstance(body, dict) and "error" in body:
            error = str(body["error"])
            description = str(body.get("error_description") or _DESCRIPTIONS.get(error, error))
            return oauth_error(401 if error == "invalid_client" else 400, error, description)
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def token_response(
    ctx: TokenContext, *, uri: str, headers: dict[str, str], form: dict[str, str]
) -> JSONResponse:
    """The token endpoint's answer to a checked form, computed by Authlib's server."""
    server = TrustPlaneAuthorizationServer(ctx)
    request = FormRequest("POST", uri, headers, form)
    response: JSONResponse = await greenlet_spawn(server.create_token_response, request)
    return response


async def endpoint_response(
    name: str, ctx: TokenContext, http_request: Request, *, headers: dict[str, str], form: dict[str, str]
) -> JSONResponse:
    """Revocation (``revocation``) or introspection (``introspection``) by Authlib's endpoints."""
    server = TrustPlaneAuthorizationServer(ctx, http_request)
    request = FormRequest("POST", str(http_request.url), headers, form)
    response: JSONResponse = await greenlet_spawn(server.create_endpoint_response, name, request)
    return response


async def validate_authorization_request(ctx: TokenContext, params: dict[str, str]) -> AuthorizationRequest:
    """An authorization request validated by Authlib's code grant (``get_consent_grant``: the client, the
    exact redirect URI, the response type, PKCE's challenge) and TrustPlane's policy hook. An error before
    the client and redirect URI are trusted is shown to the user (``AuthorizationRequestError``, never a
    redirect: no open redirect); after, it is sent to the redirect URI (``RedirectableError``)."""
    server = TrustPlaneAuthorizationServer(ctx)
    request = FormRequest("GET", "", {}, params)

    def run() -> Any:
        try:
            return server.get_consent_grant(request)
        except OAuth2Error as exc:
            return exc

    grant = await greenlet_spawn(run)
    if isinstance(grant, OAuth2Error):
        if grant.redirect_uri:
            raise RedirectableError(grant, params.get("state"))
        if grant.error == "invalid_client":
            raise AuthorizationRequestError("The application (client_id) is not registered in this tenant.")
        raise AuthorizationRequestError(
            "The redirect URI in the request does not match a redirect URI registered for the application."
        )
    max_age = params.get("max_age")
    grant.request.tp_areq = areq = AuthorizationRequest(
        client=grant.request.client.app,
        redirect_uri=grant.redirect_uri,
        state=params.get("state"),
        scope=grant.request.tp_scope,
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge"),
        prompt=params.get("prompt") or None,
        max_age=int(max_age) if max_age is not None else None,
        grant=grant,
    )
    return areq


async def authorization_response(areq: AuthorizationRequest, who: Authenticated) -> Response:
    """The code, issued by Authlib's code grant for the signed-in user who consented: the redirect with
    ``code``, ``state`` and (``handle_response``) ``iss``."""
    grant = areq.grant
    response: Response = await greenlet_spawn(
        grant.server.create_authorization_response, grant.request, who, grant
    )
    return response
