"""Token introspection (RFC 7662) for confidential clients of the tenant: an access token is active when it
passes every check a resource API makes (signature, claims, and for a user's token its grant and its
user's revocation state); a refresh token only for the client it was issued to."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from trustplane.auth.deps import base_url
from trustplane.auth.tokens import verify_access_token
from trustplane.core.clock import to_utc, utcnow
from trustplane.core.errors import Unauthenticated
from trustplane.directory.models import Application
from trustplane.directory.repository import UserRepository
from trustplane.idp.oauth.repository import GrantRepository, RefreshTokenRepository
from trustplane.idp.oauth.service import digest
from trustplane.idp.revocation import still_valid

INACTIVE: dict[str, Any] = {"active": False}


def _payload(token: str) -> dict[str, Any]:
    """The claims of a token whose signature was already verified."""
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def introspect_token(
    request: Request, session: AsyncSession, tenant_id: str, client: Application, token: str
) -> dict[str, Any]:
    row = await RefreshTokenRepository(session, tenant_id).by_hash(digest(token))
    if row is not None:
        return await _refresh_token(session, tenant_id, client, row.grant_id, row)
    settings = request.app.state.settings
    try:
        principal = await verify_access_token(
            session,
            request.app.state.keys,
            token,
            issuer_base=base_url(request),
            audiences=list(settings.audiences),
        )
    except Unauthenticated:
        return INACTIVE
    if principal.tenant_id != tenant_id:
        return INACTIVE
    claims = _payload(token)
    answer = {
        "active": True,
        "token_type": "access_token",
        "client_id": claims.get("azp") or claims.get("appid"),
        "sub": claims.get("sub"),
        "aud": claims.get("aud"),
        "iss": claims.get("iss"),
        "exp": claims.get("exp"),
        "iat": claims.get("iat"),
        "nbf": claims.get("nbf"),
        "tid": claims.get("tid"),
    }
    if principal.kind == "user":
        answer["scope"] = claims.get("scp")
        answer["username"] = claims.get("preferred_username")
    else:
        answer["roles"] = sorted(principal.roles)
    return answer


async def _refresh_token(
    session: AsyncSession, tenant_id: str, client: Application, grant_id: str, row: Any
) -> dict[str, Any]:
    grant = await GrantRepository(session, tenant_id).get(grant_id)
    now = utcnow()
    if grant is None or grant.application_id != client.id or grant.revoked_at is not None:
        return INACTIVE
    if row.used_at is not None or to_utc(row.expires_at) <= now:
        return INACTIVE
    user = await UserRepository(session, tenant_id).get(grant.user_id)
    if user is None or not still_valid(user, row.created_at):
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": client.app_id,
        "sub": grant.user_id,
        "scope": grant.scope,
        "exp": int(to_utc(row.expires_at).timestamp()),
        "iat": int(to_utc(row.created_at).timestamp()),
        "username": user.user_principal_name,
    }
