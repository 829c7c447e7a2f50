"""The Graph face of the discovery report: ``/beta/security/dataDiscovery/cloudAppDiscovery/uploadedStreams``
and ``…/{streamId}/aggregatedAppsDetails(period=duration'P30D')`` with ``$filter`` / ``$select`` /
``$orderby`` / ``$top``, one app, its users and IP addresses (Graph's discoveredCloudApp* resources).
Permission CloudApp-Discovery.Read.All. Errors in Graph's dialect (the app's default)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.deps import ReadSession, base_url, requires
from trustplane.auth.permissions import Principal
from trustplane.core.clock import iso_z
from trustplane.core.errors import BadRequest, NotFound
from trustplane.discovery import anonymization, report
from trustplane.discovery.api import DISCOVERY_READ_ALL, DISCOVERY_READWRITE_ALL
from trustplane.graph.query import check_options, parse_select, parse_top

BASE = "/beta/security/dataDiscovery/cloudAppDiscovery/uploadedStreams"
CanRead = Depends(requires(DISCOVERY_READ_ALL, DISCOVERY_READWRITE_ALL))
router = APIRouter(tags=["cloud discovery (Graph)"])

_FUNCTION = re.compile(
    r"^\s*(?:microsoft\.graph\.security\.)?aggregatedAppsDetails\s*\(\s*period\s*=\s*duration\s*'P(\d{1,3})D'\s*\)\s*$"
)
_APP_OPTIONS = {"$filter", "$select", "$top", "$orderby"}


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _context(request: Request, fragment: str) -> str:
    return f"{base_url(request)}/beta/$metadata#{fragment}"


def _period(function: str) -> int:
    m = _FUNCTION.match(function)
    if m is None:
        raise NotFound(f"Resource not found for the segment '{function}'.")
    days = int(m.group(1))
    if days not in report.PERIODS:
        raise BadRequest(f"period must be P7D, P30D or P90D; got P{days}D.")
    return days


@router.get(BASE, summary="The uploaded streams (cloudAppDiscoveryReport)")
async def uploaded_streams(
    request: Request, principal: Principal = CanRead, session: AsyncSession = ReadSession
) -> Response:
    check_options(request, set())
    privacy = await anonymization.of_streams(session, principal.tenant_id)
    value = [
        {
            "id": s.stream.id,
            "displayName": s.stream.name,
            "isSnapshotReport": s.stream.is_snapshot,
            "createdDateTime": iso_z(s.stream.created_at),
            "lastDataReceivedDateTime": iso_z(s.stream.last_data_received)
            if s.stream.last_data_received
            else None,
            "lastModifiedDateTime": iso_z(s.stream.last_data_received or s.stream.created_at),
            "logFileCount": s.log_files,
            "anonymizeUserData": privacy.get(s.stream.id, anonymization.Privacy()).users,
            "anonymizeMachineData": False,
            "description": None,
        }
        for s in await report.uploaded_streams(session, principal.tenant_id)
    ]
    fragment = "security/dataDiscovery/cloudAppDiscovery/uploadedStreams"
    return _json({"@odata.context": _context(request, fragment), "value": value})


@router.get(BASE + "/{stream_id}/{function}", summary="Discovered apps of a stream over a period")
async def aggregated_apps(
    stream_id: str,
    function: str,
    request: Request,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    days = _period(function)
    options = check_options(request, _APP_OPTIONS)
    select_ = parse_select(options, report.SELECTABLE)
    top = parse_top(options, 999, 999)
    apps = await report.discovered_apps(
        session,
        principal.tenant_id,
        stream_id,
        days,
        filter_text=options.get("$filter"),
        orderby=options.get("$orderby"),
        top=top,
    )
    if select_:
        apps = [{k: app[k] for k in select_} for app in apps]
    context = _context(request, "Collection(microsoft.graph.security.discoveredCloudAppDetail)")
    return _json({"@odata.context": context, "value": apps})


@router.get(BASE + "/{stream_id}/{function}/{app_id}", summary="One discovered app of a stream")
async def aggregated_app(
    stream_id: str,
    function: str,
    app_id: str,
    request: Request,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    days = _period(function)
    select_ = parse_select(check_options(request, {"$select"}), report.SELECTABLE)
    apps = await report.discovered_apps(session, principal.tenant_id, stream_id, days, app_id=app_id)
    if not apps:
        raise NotFound(f"App {app_id!r} was not discovered in this stream in the period.")
    app = {k: apps[0][k] for k in select_} if select_ else apps[0]
    context = _context(request, "microsoft.graph.security.discoveredCloudAppDetail/$entity")
    return _json({"@odata.context": context, **app})


@router.get(BASE + "/{stream_id}/{function}/{app_id}/users", summary="Users of a discovered app")
async def app_users(
    stream_id: str,
    function: str,
    app_id: str,
    request: Request,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    days = _period(function)
    check_options(request, set())
    users = await report.app_users(session, principal.tenant_id, stream_id, days, app_id)
    context = _context(request, "Collection(microsoft.graph.security.discoveredCloudAppUser)")
    return _json({"@odata.context": context, "value": [{"userIdentifier": u} for u in users]})


async def _ip_addresses(
    stream_id: str, function: str, app_id: str, request: Request, principal: Principal, session: AsyncSession
) -> Response:
    days = _period(function)
    check_options(request, set())
    ips = await report.app_ip_addresses(session, principal.tenant_id, stream_id, days, app_id)
    context = _context(request, "Collection(microsoft.graph.security.discoveredCloudAppIPAddress)")
    return _json({"@odata.context": context, "value": [{"ipAddress": ip} for ip in ips]})


@router.get(BASE + "/{stream_id}/{function}/{app_id}/ipAddresses", summary="IP addresses of a discovered app")
async def app_ip_addresses(
    stream_id: str,
    function: str,
    app_id: str,
    request: Request,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    return await _ip_addresses(stream_id, function, app_id, request, principal, session)


@router.get(
    BASE + "/{stream_id}/{function}/{app_id}/ipAddress",
    summary="IP addresses of a discovered app (the singular path of MCAS's own example)",
)
async def app_ip_address(
    stream_id: str,
    function: str,
    app_id: str,
    request: Request,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    return await _ip_addresses(stream_id, function, app_id, request, principal, session)


@router.get(
    BASE + "/{stream_id}/{function}/{app_id}/appInfo",
    summary="Risk attributes of a discovered app (discoveredCloudAppInfo), from the catalogue",
)
async def app_info(
    stream_id: str,
    function: str,
    app_id: str,
    request: Request,
    principal: Principal = CanRead,
    session: AsyncSession = ReadSession,
) -> Response:
    days = _period(function)
    options = check_options(request, {"$select"})
    info = await report.app_info(session, principal.tenant_id, stream_id, days, app_id)
    select_ = parse_select(options, sorted(info))
    if select_:
        info = {k: info[k] for k in ["id", *select_] if k in info}
    context = _context(request, "microsoft.graph.security.discoveredCloudAppInfo/$entity")
    return _json({"@odata.context": context, **info})
