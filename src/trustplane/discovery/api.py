"""The MCAS face of cloud discovery: the three-stage log upload exactly as MCAS documents it
(``upload_url`` → ``PUT`` to the signed URL → ``done_upload``), plus TrustPlane's own endpoints for an
upload's status and the custom log format. Errors speak MCAS's ``{"detail": …}`` (discovery.errors)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import DbSession, ReadSession, base_url, requires
from trustplane.auth.permissions import Principal
from trustplane.auth.ratelimit import RateLimited
from trustplane.core.bodies import has_nul, parse_json_object, read_body, read_json_object
from trustplane.core.clock import iso_z
from trustplane.core.errors import BadRequest, PayloadTooLarge
from trustplane.core.events import Actor
from trustplane.discovery import anonymization, blocks, blockscripts, dashboard, governance, report, service
from trustplane.discovery.log_types import LOG_TYPES
from trustplane.discovery.models import DiscoveryUpload

DISCOVERY_READ_ALL = "CloudApp-Discovery.Read.All"
DISCOVERY_READWRITE_ALL = "CloudApp-Discovery.ReadWrite.All"
# TrustPlane's own: resolving anonymised users is apart from reading and writing reports, as in MCAS.
DISCOVERY_DEANONYMIZE = "CloudApp-Discovery.Deanonymize"
CanRead = Depends(requires(DISCOVERY_READ_ALL, DISCOVERY_READWRITE_ALL))
CanWrite = Depends(requires(DISCOVERY_READWRITE_ALL))
CanDeanonymize = Depends(requires(DISCOVERY_DEANONYMIZE))

router = APIRouter(prefix="/api", tags=["cloud discovery (MCAS API)"])
# Every route but the signed upload URL's PUT is rate limited per caller; that one has no caller identity (its
# URL's secret is the credential), and the router-wide dependency refused it with 401. Joined to ``router`` at
# the end of this module.
limited = APIRouter(dependencies=[RateLimited])
_TRUE = {"true", "1", "yes", "on"}
_WRITE_BUFFER = 1 << 20


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _actor(principal: Principal) -> Actor:
    return Actor(type=principal.kind, id=principal.id, name=principal.name)


@limited.get("/v1/discovery/upload_url/", summary="Initiate a log upload (MCAS stage 1)")
async def upload_url(
    request: Request,
    filename: str = "",
    source: str = "",
    principal: Principal = CanWrite,
    session: AsyncSession = DbSession,
) -> Response:
    announced = await service.announce_upload(
        session,
        principal.tenant_id,
        _actor(principal),
        filename=filename,
        source=source,
        base_url=base_url(request),
        data_dir=Path(request.app.state.settings.data_dir),
    )
    # "azure": the URL takes Azure's single-request Put Blob (x-ms-blob-type: BlockBlob), and for large files
    # Put Block + Put Block List as the Azure SDKs send them (MCAS: "upload it in chunks"; discovery.blocks).
    return _json({"url": announced.url, "provider": "azure"})


@router.put(
    "/v1/discovery/upload/{upload_id}",
    summary="Upload the log file to the signed URL (MCAS stage 2); the URL's secret is the credential",
    status_code=201,
)
async def put_upload(upload_id: str, request: Request, sig: str = "", comp: str = "") -> Response:
    db = request.app.state.db
    async with db.session() as session:
        upload = await service.upload_for_put(session, upload_id, sig)
        path = Path(upload.path)
    if comp == "block":  # Azure Put Block: stage one chunk (discovery.blocks)
        target = blocks.block_path(path, request.query_params.get("blockid", ""))
        staged = await asyncio.to_thread(blocks.staged, path)
        if staged.count >= blocks.MAX_BLOCKS or staged.size > service.MAX_UPLOAD_BYTES:
            raise PayloadTooLarge("A log file may be at most 5 GB in at most 50,000 blocks.")
        await _receive(request, target)
        return Response(status_code=201)
    if comp == "blocklist":  # Azure Put Block List: the staged chunks, in the listed order, are the file
        block_ids = blocks.parse_block_list(await read_body(request))
        size = await asyncio.to_thread(blocks.commit, path, block_ids, service.MAX_UPLOAD_BYTES)
    elif comp:
        raise BadRequest(f"comp={comp!r} is not supported; use block or blocklist, or none for one PUT.")
    else:
        size = await _receive(request, path)
    async with db.session() as session:
        upload = await service.upload_for_put(session, upload_id, sig)
        service.mark_uploaded(upload, size)
    return Response(status_code=201)


async def _receive(request: Request, path: Path) -> int:
    """Stream the body to ``path`` (via a temporary name), never holding more than a megabyte."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    handle = await asyncio.to_thread(partial.open, "wb")
    size = 0
    buffer: list[bytes] = []
    buffered = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > service.MAX_UPLOAD_BYTES:
                raise PayloadTooLarge("A log file may be at most 5 GB; split larger files.")
            buffer.append(chunk)
            buffered += len(chunk)
            if buffered >= _WRITE_BUFFER:
                await asyncio.to_thread(handle.write, b"".join(buffer))
                buffer, buffered = [], 0
        if buffer:
            await asyncio.to_thread(handle.write, b"".join(buffer))
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise
    await asyncio.to_thread(handle.close)
    await asyncio.to_thread(os.replace, partial, path)
    return size


async def _done_upload_body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request)
    if content_type == "application/json":
        return parse_json_object(raw)
    # Form-encoded, as MCAS's older examples and clients send it.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("The body is neither JSON nor form-encoded UTF-8.") from exc
    form = dict(parse_qsl(text, keep_blank_values=True))
    if has_nul(form):
        raise BadRequest("The request body contains a NUL character (%00), which is not allowed.")
    return form


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _optional_flag(body: dict[str, Any], name: str) -> bool | None:
    if name not in body or body[name] in (None, ""):
        return None
    value = body[name]
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in {"false", "0", "no", "off"}:
        return text in _TRUE
    raise BadRequest(f"{name} must be true or false.")


@limited.post("/v1/discovery/done_upload/", summary="Finish a log upload and queue it (MCAS stage 3)")
async def done_upload(
    request: Request, principal: Principal = CanWrite, session: AsyncSession = DbSession
) -> Response:
    body = await _done_upload_body(request)
    upload = await service.submit_upload(
        session,
        principal.tenant_id,
        _actor(principal),
        upload_url=str(body.get("uploadUrl", "")),
        stream_name=str(body.get("inputStreamName", "")),
        as_snapshot=_flag(body.get("uploadAsSnapshot", False)),
        # TrustPlane's addition (MCAS sets this in its portal when a report is created): optional.
        anonymize_users=_optional_flag(body, "anonymizeUsers"),
        anonymize_ip_addresses=_optional_flag(body, "anonymizeIpAddresses"),
    )
    return _json({"success": True, "uploadId": upload.id, "streamId": upload.stream_id})


def _upload_view(upload: DiscoveryUpload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "filename": upload.filename,
        "source": upload.source,
        "status": upload.status,
        "size": upload.size,
        "streamId": upload.stream_id,
        "bytesProcessed": upload.offset,
        "error": upload.error,
        "result": upload.stats or {},
    }


@limited.get("/v1/discovery/uploads/{upload_id}/", summary="An upload's processing status and result")
async def upload_status(
    upload_id: str, principal: Principal = CanRead, session: AsyncSession = ReadSession
) -> Response:
    return _json(_upload_view(await service.get_upload(session, principal.tenant_id, upload_id)))


@limited.put("/v1/discovery/custom_parser/", summary="Define the tenant's custom log format (CUSTOM_PARSER)")
async def put_custom_parser(
    request: Request, principal: Principal = CanWrite, session: AsyncSession = DbSession
) -> Response:
    definition = await read_json_object(request)
    await service.set_custom_format(session, principal.tenant_id, _actor(principal), definition)
    return _json(definition)


def _app_view(governed: governance.GovernedApp) -> dict[str, Any]:
    app, risk = governed.app, governed.risk
    return {
        "id": app.id,
        "name": app.name,
        "vendor": app.vendor,
        "category": app.category,
        "domains": list(app.domains),
        "status": governed.status,
        "tags": governed.all_tags,
        "customTags": governed.tags,
        "riskScore": risk.total,
        "riskScoreOverridden": risk.overridden,
        "riskSubscores": {
            "general": risk.general,
            "security": risk.security,
            "compliance": risk.compliance,
            "legal": risk.legal,
        },
        "note": governed.note,
        "riskAttributes": app.risk,
    }


@limited.put(
    "/v1/discovery/score_metrics/",
    summary="Risk score metrics: importance per category and attribute, whether unknown values count against",
)
async def put_score_metrics(
    request: Request, principal: Principal = CanWrite, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    await governance.set_score_settings(session, principal.tenant_id, _actor(principal), body)
    return _json(body)


@limited.get("/v1/discovery/apps/{app_id}/", summary="A catalogue app with this tenant's governance, score")
async def get_app(
    app_id: str, principal: Principal = CanRead, session: AsyncSession = ReadSession
) -> Response:
    return _json(_app_view(await governance.governed_app(session, principal.tenant_id, app_id)))


@limited.patch(
    "/v1/discovery/apps/{app_id}/",
    summary="Govern an app: status (sanctioned / unsanctioned / monitored), custom tags, risk override, note",
)
async def patch_app(
    app_id: str, request: Request, principal: Principal = CanWrite, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"status", "tags", "riskScoreOverride", "note"})
    if unknown:
        raise BadRequest(f"Unknown properties {unknown}; allowed: status, tags, riskScoreOverride, note.")
    changes: dict[str, Any] = {}
    if "status" in body:
        changes["status"] = body["status"]
    if "tags" in body:
        changes["tags"] = body["tags"]
    if "riskScoreOverride" in body:
        changes["risk_override"] = body["riskScoreOverride"]
    if "note" in body:
        changes["note"] = body["note"]
    governed = await governance.govern_app(session, principal.tenant_id, _actor(principal), app_id, **changes)
    return _json(_app_view(governed))


@limited.get(
    "/discovery_block_scripts/",
    summary="Block script of the unsanctioned apps for a network appliance (MCAS format number)",
)
async def block_script(
    format: str = "",
    type: str = "banned",
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    try:
        format_id = int(format)
    except ValueError:
        format_id = -1
    if format_id not in blockscripts.FORMATS:
        known = ", ".join(f"{k} ({v[0]})" for k, v in blockscripts.FORMATS.items())
        raise BadRequest(f"Unknown appliance format {format!r}; supported: {known}.")
    if type != "banned":
        raise BadRequest("Only type=banned is supported.")
    domains = await governance.blocked_domains(session, principal.tenant_id)
    return Response(blockscripts.render(format_id, domains), media_type="text/plain; charset=utf-8")


@limited.get(
    "/v1/discovery/block_list/",
    summary="Domains of the unsanctioned apps for appliances that poll: text (one per line) or a JSON feed, "
    "with an ETag (If-None-Match answers 304)",
)
async def block_list(
    request: Request,
    format: str = "text",
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    if format not in ("text", "json"):
        raise BadRequest("format must be 'text' or 'json'.")
    domains = await governance.blocked_domains(session, principal.tenant_id)
    etag = governance.etag_of(domains)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if format == "json":
        body = orjson.dumps({"version": etag.strip('"'), "domains": domains})
        return Response(body, media_type="application/json", headers=headers)
    return Response(blockscripts.plain(domains), media_type="text/plain; charset=utf-8", headers=headers)


@limited.get("/discovery/streams/", summary="List continuous reports (MCAS)")
async def list_streams(principal: Principal = CanRead, session: AsyncSession = ReadSession) -> Response:
    privacy = await anonymization.of_streams(session, principal.tenant_id)
    out = []
    for summary in await report.uploaded_streams(session, principal.tenant_id):
        stream = summary.stream
        if stream.is_snapshot:
            continue
        source = summary.sources[0] if len(summary.sources) == 1 else None
        out.append(
            {
                "_id": stream.id,
                "displayName": stream.name,
                "logType": LOG_TYPES.get(source, 1) if source else 1,  # 1 OTHER: no or mixed sources
                "receiverType": "api",  # filled by the upload API, not a syslog or FTP receiver
                "streamType": 1,
                "isManual": True,
                "created": iso_z(stream.created_at),
                "lastModified": iso_z(stream.last_data_received or stream.created_at),
                "lastDataReceived": iso_z(stream.last_data_received),
                "logFilesHistoryCount": summary.log_files,
                "logFilesFailsCount": summary.failed,
                "anonymizeUsers": privacy.get(stream.id, anonymization.Privacy()).users,
                "globalAggregated": False,
                "supportedEntityTypes": [1, 2],
                "supportedTrafficTypes": [2, 3],
            }
        )
    return _json(out)


@limited.get(
    "/v1/discovery/streams/{stream_id}/unmatched/",
    summary="Destinations no catalogue app claims, with their traffic (largest first)",
)
async def unmatched(
    stream_id: str,
    period: int = 30,
    top: int = 100,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    if not 1 <= top <= 1000:
        raise BadRequest("top must be from 1 to 1000.")
    found = await report.unmatched_destinations(session, principal.tenant_id, stream_id, period, top=top)
    return _json({"data": found, "total": len(found)})


# TrustPlane's own report endpoints (MCAS's dashboard, which neither MCAS's API nor Graph exposes): read from
# the stream's aggregates over ``period`` days (7, 30 or 90), lists paged with ``skip`` / ``top``.
REPORT = "/v1/discovery/streams/{stream_id}/report"


@limited.get(REPORT + "/categories/", summary="Top categories of a stream: apps, users, traffic")
async def report_categories(
    stream_id: str,
    period: int = 30,
    skip: int = 0,
    top: int = 50,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    page = await dashboard.top_categories(session, principal.tenant_id, stream_id, period, skip=skip, top=top)
    return _json(page.as_dict())


@limited.get(REPORT + "/users/", summary="Top users of a stream by traffic to catalogue apps")
async def report_users(
    stream_id: str,
    period: int = 30,
    skip: int = 0,
    top: int = 50,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    page = await dashboard.top_users(session, principal.tenant_id, stream_id, period, skip=skip, top=top)
    return _json(page.as_dict())


@limited.get(REPORT + "/ip_addresses/", summary="Top source IP addresses of a stream by traffic")
async def report_ip_addresses(
    stream_id: str,
    period: int = 30,
    skip: int = 0,
    top: int = 50,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    page = await dashboard.top_ip_addresses(
        session, principal.tenant_id, stream_id, period, skip=skip, top=top
    )
    return _json(page.as_dict())


@limited.get(REPORT + "/traffic/", summary="Traffic of a stream per day: transactions, bytes, users, apps")
async def report_traffic(
    stream_id: str, period: int = 30, principal: Principal = CanRead, session: AsyncSession = ReadSession
) -> Response:
    data = await dashboard.traffic_over_time(session, principal.tenant_id, stream_id, period)
    return _json({"data": data, "total": len(data), "hasNext": False})


@limited.get(REPORT + "/risk/", summary="App risk overview: apps and traffic per risk score, band")
async def report_risk(
    stream_id: str, period: int = 30, principal: Principal = CanRead, session: AsyncSession = ReadSession
) -> Response:
    return _json(await dashboard.risk_overview(session, principal.tenant_id, stream_id, period))


@limited.get("/v1/discovery/anonymization/", summary="Anonymisation defaults for new reports")
async def get_anonymization(principal: Principal = CanRead, session: AsyncSession = ReadSession) -> Response:
    return _json((await anonymization.defaults(session, principal.tenant_id)).as_dict())


@limited.put(
    "/v1/discovery/anonymization/",
    summary="Anonymise user names (and source IPs) by default in new reports (MCAS's anonymization setting)",
)
async def put_anonymization(
    request: Request, principal: Principal = CanWrite, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    privacy = await anonymization.set_defaults(session, principal.tenant_id, _actor(principal), body)
    return _json(privacy.as_dict())


@limited.post(
    "/v1/discovery/anonymization/resolve/",
    summary="Resolve anonymised users or IPs (fromAnonymized) or look up a name's token (toAnonymized), "
    "with a justification; audited",
)
async def resolve_anonymized(
    request: Request, principal: Principal = CanDeanonymize, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    results = await anonymization.resolve(
        session,
        principal.tenant_id,
        _actor(principal),
        kind=str(body.get("kind", anonymization.USER)),
        direction=str(body.get("direction", "fromAnonymized")),
        values=body.get("values"),  # checked by the service
        justification=body.get("justification"),
    )
    return _json({"data": results})


router.include_router(limited)
