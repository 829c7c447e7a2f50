"""The OAuth 2.0 face in Entra's path shape: the client-credentials token endpoint, JWKS and OpenID
discovery per tenant. Public by nature (they are how a caller gets authenticated); errors follow RFC 6749."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import DbSession, base_url
from trustplane.auth.service import authenticate_client
from trustplane.auth.tokens import issue_access_token, issuer_for
from trustplane.core.errors import DomainError, NotFound
from trustplane.directory.service import resolve_tenant

router = APIRouter(tags=["oauth2"])


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="trustplane"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if sep else None


@router.post("/{tenant}/oauth2/v2.0/token", summary="OAuth 2.0 token endpoint (client credentials)")
async def token(tenant: str, request: Request, session: AsyncSession = DbSession) -> JSONResponse:
    settings = request.app.state.settings
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return oauth_error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
    raw = await request.body()
    if len(raw) > settings.max_body_bytes:
        return oauth_error(400, "invalid_request", "The request body is too large.")
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        return oauth_error(400, "invalid_request", "The request body could not be parsed.")
    names = [k for k, _ in pairs]
    repeated = sorted({k for k in names if names.count(k) > 1})
    if repeated:  # RFC 6749 3.2: parameters must not be included more than once
        return oauth_error(400, "invalid_request", f"The parameter '{repeated[0]}' was sent more than once.")
    fields = dict(pairs)
    grant_type = fields.get("grant_type")
    if grant_type != "client_credentials":
        return oauth_error(
            400,
            "unsupported_grant_type",
            f"The grant type '{grant_type}' is not supported; use client_credentials.",
        )
    basic = _basic_credentials(request)
    if basic is not None:
        client_id, secret = basic
    else:
        client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    if not client_id or not secret:
        return oauth_error(
            401, "invalid_client", "Client authentication is required (client_id and client_secret)."
        )
    scope = fields.get("scope", "")
    if not scope:
        return oauth_error(400, "invalid_request", "The request body must contain the parameter 'scope'.")
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        return oauth_error(400, "invalid_scope", "The scope must be a single '<resource>/.default' value.")
    resource = scopes[0][: -len("/.default")]
    if resource not in settings.audiences:
        return oauth_error(
            400, "invalid_scope", f"The resource '{resource}' is not served by this authority."
        )
    try:
        tenant_row = await resolve_tenant(session, tenant)
        app = await authenticate_client(session, tenant_row.id, client_id, secret)
    except NotFound:
        return oauth_error(400, "invalid_request", f"Tenant '{tenant}' not found.")
    except DomainError as exc:
        return oauth_error(401, "invalid_client", exc.message)
    access_token = await issue_access_token(
        session,
        request.app.state.keys,
        issuer_base=base_url(request),
        tenant_id=tenant_row.id,
        audience=resource,
        subject=app.id,
        client_id=app.app_id,
        name=app.display_name,
        roles=list(app.permissions),
        lifetime_seconds=settings.access_token_lifetime_seconds,
    )
    lifetime = settings.access_token_lifetime_seconds
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.get("/{tenant}/discovery/v2.0/keys", summary="JSON Web Key Set of the tenant's signing keys")
async def jwks(tenant: str, request: Request, session: AsyncSession = DbSession) -> JSONResponse:
    try:
        tenant_row = await resolve_tenant(session, tenant)
    except NotFound:
        return oauth_error(404, "invalid_tenant", f"Tenant '{tenant}' not found.")
    keys = await request.app.state.keys.jwks(session, tenant_row.id)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", summary="OpenID Connect discovery document")
async def openid_configuration(
    tenant: str, request: Request, session: AsyncSession = DbSession
) -> JSONResponse:
    try:
        tenant_row = await resolve_tenant(session, tenant)
    except NotFound:
        return oauth_error(404, "invalid_tenant", f"Tenant '{tenant}' not found.")
    base = base_url(request)
    doc = {
        "issuer": issuer_for(base, tenant_row.id),
        "token_endpoint": f"{base}/{tenant_row.id}/oauth2/v2.0/token",
        "jwks_uri": f"{base}/{tenant_row.id}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["pairwise"],
        "scopes_supported": [f"{aud}/.default" for aud in request.app.state.settings.audiences],
        "claims_supported": ["iss", "aud", "sub", "tid", "appid", "roles", "iat", "nbf", "exp"],
        "tenant_region_scope": None,
    }
    return JSONResponse(doc)
