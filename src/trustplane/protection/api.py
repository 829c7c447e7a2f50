"""The sign-in ingestion face for other identity providers: ``POST /protection/v1/signIns/batch``
(``IdentityRiskEvent.ReadWrite.All``). Thin: read the body, call ``ingest``, answer each event's outcome.
A batch that is not a batch is refused whole in Graph's error dialect; a bad event gets its own error."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth import permissions as perm
from trustplane.auth.deps import DbSession, requires
from trustplane.auth.permissions import Principal
from trustplane.core.bodies import read_json_object
from trustplane.graph.api import json
from trustplane.protection import ingest

router = APIRouter(prefix="/protection/v1", tags=["identity protection: ingestion"])


@router.post("/signIns/batch", summary="Ingest sign-in events from another identity provider (idempotent)")
async def ingest_sign_ins(
    request: Request,
    principal: Principal = Depends(requires(*perm.INGEST_SIGN_INS)),
    session: AsyncSession = DbSession,
) -> Response:
    result = await ingest.ingest(session, principal.tenant_id, await read_json_object(request))
    return json(
        {
            "received": len(result.results),
            "created": result.count("created"),
            "duplicates": result.count("duplicate"),
            "errors": result.count("error"),
            "results": result.results,
        }
    )
