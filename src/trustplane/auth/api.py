"""The tenant's JSON Web Key Set (``/{tenant}/discovery/v2.0/keys``, Entra's path): the public halves of its
signing keys, retired ones included until every token they signed has expired. Public by nature. The token
endpoint and the OpenID discovery document are the authorization server's (``idp.oauth.api``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import DbSession
from trustplane.core.errors import NotFound
from trustplane.directory.service import resolve_tenant
from trustplane.idp.oauth.wire import oauth_error

router = APIRouter(tags=["oauth2"])


@router.get("/{tenant}/discovery/v2.0/keys", summary="JSON Web Key Set of the tenant's signing keys")
async def jwks(tenant: str, request: Request, session: AsyncSession = DbSession) -> JSONResponse:
    try:
        tenant_row = await resolve_tenant(session, tenant)
    except NotFound:
        return oauth_error(404, "invalid_tenant", f"Tenant '{tenant}' not found.")
    keys = await request.app.state.keys.jwks(session, tenant_row.id)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})
