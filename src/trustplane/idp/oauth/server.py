"""TrustPlane's authorization server on Authlib: an ``AuthorizationServer`` subclass with the three token
grants (``grants.py``), RFC 7636 PKCE and the OpenID Connect ID token, bridged to our async stack.

The bridge: the route reads and checks the body first (async, ``wire.read_form``: urlencoded, every
parameter once, size-capped), then hands Authlib a prepared ``OAuth2Request`` and runs the synchronous
server inside ``sqlalchemy.util.greenlet_spawn``; Authlib's callbacks (``query_client``, the grants' code
and refresh-token lookups, the client's secret check) await the async repositories with ``await_only``.
One server per request: it carries the request's tenant context, and building one costs a few list
appends. Errors leave in our wire's RFC 6749 dialect (``wire.oauth_error``: 401 for ``invalid_client``,
``no-store``); the session still commits after an error, because a reuse revokes its family.

Transport security is the deployment's (TLS at the edge, its ``base_url``): Authlib's ``http`` refusal
would reject a TLS-terminating proxy's plain hop, so the request is built without it."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from fastapi.responses import JSONResponse
from sqlalchemy.util import greenlet_spawn

from trustplane.auth.service import client_secret_matches
from trustplane.directory.models import Application
from trustplane.idp.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    IdToken,
    RefreshTokenGrant,
    S256CodeChallenge,
    TokenContext,
    wait,
)
from trustplane.idp.oauth.service import GRANT_TYPES, find_client
from trustplane.idp.oauth.wire import oauth_error

_DESCRIPTIONS = {  # for Authlib errors raised without a description
    "invalid_client": "Invalid client credentials.",
    "invalid_grant": "The grant is invalid, expired, revoked or was already used.",
    "invalid_scope": "The requested scope is invalid.",
    "unsupported_grant_type": f"The grant type is not supported; use {', '.join(GRANT_TYPES)}.",
    "unauthorized_client": "The application is not allowed to use this grant type.",
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
        return response_type == "code"

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


class TrustPlaneAuthorizationServer(AuthorizationServer):
    def __init__(self, ctx: TokenContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), IdToken()])
        self.register_grant(RefreshTokenGrant, [IdToken()])
        self.register_grant(ClientCredentialsGrant)

    def query_client(self, client_id: str) -> OAuthClient | None:
        app = wait(find_client(self.ctx.session, self.ctx.tenant_id, client_id or ""))
        return OAuthClient(app, self.ctx) if app is not None else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Nothing to save: a refresh token's row is written when it is minted, access tokens are JWTs."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers."""

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> JSONResponse:
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
