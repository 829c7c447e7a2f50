"""The wire of the authorization server's endpoints, shared by its routes: urlencoded forms with every
parameter once, client credentials (HTTP Basic or the form), RFC 6749 error bodies, and reading a JWT this
tenant signed."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from fastapi import Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import base_url
from trustplane.auth.keys import ALGORITHM
from trustplane.auth.tokens import issuer_for

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = dict(NO_STORE)
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="trustplane"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def render_oauth_error(exc: OAuth2Error) -> JSONResponse:
    status = 401 if exc.error == "invalid_client" else 400
    return oauth_error(status, str(exc.error), str(exc.description or exc.error))


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if sep else None


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body, every parameter at most once (RFC 6749 3.2); raises InvalidRequestError."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidRequestError(description="The body must be application/x-www-form-urlencoded.")
    raw = await request.body()
    if len(raw) > request.app.state.settings.max_body_bytes:
        raise InvalidRequestError(description="The request body is too large.")
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError(description="The request body could not be parsed.") from exc
    return single_valued(pairs)


def single_valued(pairs: list[tuple[str, str]]) -> dict[str, str]:
    names = [k for k, _ in pairs]
    repeated = sorted({k for k in names if names.count(k) > 1})
    if repeated:
        raise InvalidRequestError(description=f"The parameter '{repeated[0]}' was sent more than once.")
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidRequestError(description="Parameters may not contain NUL characters.")
    return dict(pairs)


def client_credentials(request: Request, fields: dict[str, str]) -> tuple[str, str | None]:
    basic = basic_credentials(request)
    if basic is not None:
        if fields.get("client_secret"):
            raise InvalidRequestError(description="Use one client authentication method, not two.")
        return basic
    return fields.get("client_id", ""), fields.get("client_secret") or None


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def _decoded_own_token(request: Request, tenant_id: str, token: str, key: Any) -> dict[str, Any] | None:
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
    except (JoseError, ValueError):
        return None
    if claims.get("tid") != tenant_id or claims.get("iss") != issuer_for(base_url(request), tenant_id):
        return None
    return dict(claims)


async def own_jwt(
    request: Request, session: AsyncSession, tenant_id: str, token: str
) -> dict[str, Any] | None:
    """A JWT this tenant signed (signature, issuer, tenant checked; expiry not: a hint or a revocation may
    name an expired token), or None."""
    if token.count(".") != 2:
        return None
    try:
        header_b64 = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(header, dict)
        or header.get("alg") != ALGORITHM
        or not isinstance(header.get("kid"), str)
    ):
        return None
    found = await request.app.state.keys.key_for_kid(session, header["kid"])
    if found is None or found[0] != tenant_id:
        return None
    return _decoded_own_token(request, tenant_id, token, found[1])
