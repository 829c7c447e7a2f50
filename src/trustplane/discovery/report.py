"""The discovery report, read from the aggregates: per app over a period (users, IPs, transactions, traffic,
last seen) joined with the catalogue and the tenant's governance, so Graph's ``$filter`` / ``$orderby`` run
in SQL through the Graph OData compiler; an app's users and IP addresses; unmatched destinations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, Select, String, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound
from trustplane.discovery.catalog.risk import ATTRIBUTES
from trustplane.discovery.governance import governed_apps
from trustplane.discovery.models import (
    DiscoveryAggregate,
    DiscoveryStream,
    DiscoveryUnmatched,
    DiscoveryUpload,
)
from trustplane.discovery.repository import (
    AggregateRepository,
    StreamRepository,
    UnmatchedRepository,
    UploadRepository,
)
from trustplane.graph import odata

PERIODS = (7, 30, 90)  # Graph's aggregatedAppsDetails supports the last 7, 30 or 90 days
_CATEGORY_OVERRIDES = {
    "Webmail": "webemail",
    "Vendor management system": "vendorManagementSystems",
    "CRM": "crm",
}


def graph_category(name: str) -> str:
    """MCAS's category name as Graph's ``appCategory`` value (``Cloud storage`` → ``cloudStorage``)."""
    if name in _CATEGORY_OVERRIDES:
        return _CATEGORY_OVERRIDES[name]
    words = [w for w in re.split(r"[^A-Za-z]+", name) if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])


def period_cutoff(days: int) -> date:
    if days not in PERIODS:
        raise BadRequest(f"period must be P7D, P30D or P90D; got P{days}D.")
    return (utcnow() - timedelta(days=days)).date()


async def stream(session: AsyncSession, tenant_id: str, stream_id: str) -> DiscoveryStream:
    found = await StreamRepository(session, tenant_id).get(stream_id)
    if found is None:
        raise NotFound(f"No uploaded stream {stream_id!r}.")
    return found


@dataclass(frozen=True)
class StreamSummary:
    stream: DiscoveryStream
    log_files: int
    sources: list[str]
    failed: int = 0


async def uploaded_streams(session: AsyncSession, tenant_id: str) -> list[StreamSummary]:
    streams = await StreamRepository(session, tenant_id).all()
    uploads = UploadRepository(session, tenant_id)
    rows = (
        await session.execute(
            uploads.select(
                DiscoveryUpload.stream_id, DiscoveryUpload.source, DiscoveryUpload.status, func.count()
            )
            .where(DiscoveryUpload.stream_id.is_not(None))
            .group_by(DiscoveryUpload.stream_id, DiscoveryUpload.source, DiscoveryUpload.status)
        )
    ).all()
    counts: dict[str, int] = {}
    failed: dict[str, int] = {}
    sources: dict[str, set[str]] = {}
    for stream_id, source, status, n in rows:
        counts[stream_id] = counts.get(stream_id, 0) + int(n)
        if status == "failed":
            failed[stream_id] = failed.get(stream_id, 0) + int(n)
        sources.setdefault(stream_id, set()).add(source)
    return [
        StreamSummary(s, counts.get(s.id, 0), sorted(sources.get(s.id, set())), failed.get(s.id, 0))
        for s in streams
    ]


# Graph wire name -> column of the joined per-app statement (built in ``_apps_statement``).
def _fields(q: Any) -> dict[str, odata.Field]:
    c = q.c
    fields = {
        "id": odata.Field("id", c.id),
        "displayName": odata.Field("displayName", c.displayName),
        "category": odata.Field("category", c.category),
        "riskScore": odata.Field("riskScore", c.riskScore, "int"),
        "riskRating": odata.Field("riskRating", c.riskScore, "int"),  # the spelling of MCAS's own example
        "userCount": odata.Field("userCount", c.userCount, "int"),
        "ipAddressCount": odata.Field("ipAddressCount", c.ipAddressCount, "int"),
        "transactionCount": odata.Field("transactionCount", c.transactionCount, "int"),
        "uploadNetworkTrafficInBytes": odata.Field(
            "uploadNetworkTrafficInBytes", c.uploadNetworkTrafficInBytes, "int"
        ),
        "downloadNetworkTrafficInBytes": odata.Field(
            "downloadNetworkTrafficInBytes", c.downloadNetworkTrafficInBytes, "int"
        ),
    }
    return fields


SELECTABLE = [
    "id",
    "displayName",
    "category",
    "domains",
    "riskScore",
    "tags",
    "userCount",
    "ipAddressCount",
    "transactionCount",
    "uploadNetworkTrafficInBytes",
    "downloadNetworkTrafficInBytes",
    "lastSeenDateTime",
]


async def _apps_statement(
    session: AsyncSession, tenant_id: str, stream_id: str, cutoff: date
) -> tuple[Any, dict[str, Any]]:
    governed = await governed_apps(session, tenant_id)
    agg = AggregateRepository(session, tenant_id)
    a = DiscoveryAggregate
    usage = (
        agg.select(
            a.app_id.label("app_id"),
            func.sum(a.transactions).label("transactionCount"),
            func.sum(a.bytes_up).label("uploadNetworkTrafficInBytes"),
            func.sum(a.bytes_down).label("downloadNetworkTrafficInBytes"),
            func.count(func.distinct(func.nullif(a.user_name, ""))).label("userCount"),
            func.count(func.distinct(func.nullif(a.ip_address, ""))).label("ipAddressCount"),
            func.max(a.day).label("lastSeen"),
        )
        .where(a.stream_id == stream_id, a.day >= cutoff)
        .group_by(a.app_id)
        .subquery("usage")
    )
    catalog = _catalog_table(
        [(g.app.id, g.app.name, graph_category(g.app.category), g.risk.total) for g in governed.values()]
    )
    joined = (
        select(
            usage.c.app_id.label("id"),
            catalog.c.displayName,
            catalog.c.category,
            catalog.c.riskScore,
            usage.c.userCount,
            usage.c.ipAddressCount,
            usage.c.transactionCount,
            usage.c.uploadNetworkTrafficInBytes,
            usage.c.downloadNetworkTrafficInBytes,
            usage.c.lastSeen,
        )
        .select_from(usage.join(catalog, catalog.c.cid == usage.c.app_id))
        .subquery("apps")
    )
    return joined, governed


def _catalog_table(rows: list[tuple[str, str, str, int | None]]) -> Any:
    """The catalogue with this tenant's scores as a derived table (a UNION ALL of literal rows: portable to
    SQLite, which has no column list on a VALUES alias)."""
    selects = [
        select(
            literal(app_id, String).label("cid"),
            literal(name, String).label("displayName"),
            literal(category, String).label("category"),
            literal(risk, Integer).label("riskScore"),
        )
        for app_id, name, category, risk in rows
    ]
    return union_all(*selects).subquery("catalog")


async def discovered_apps(
    session: AsyncSession,
    tenant_id: str,
    stream_id: str,
    days: int,
    *,
    filter_text: str | None = None,
    orderby: str | None = None,
    top: int | None = None,
    app_id: str | None = None,
) -> list[dict[str, Any]]:
    """Graph ``discoveredCloudAppDetail`` objects of a stream over the last ``days`` days."""
    cutoff = period_cutoff(days)
    await stream(session, tenant_id, stream_id)
    joined, governed = await _apps_statement(session, tenant_id, stream_id, cutoff)
    fields = _fields(joined)
    stmt: Select[Any] = select(joined)
    try:
        if filter_text is not None:
            stmt = stmt.where(odata.compile_filter(filter_text, fields))
        order = odata.parse_orderby(orderby, fields) if orderby else []
    except odata.ODataQueryError as exc:
        raise BadRequest(exc.message, code="Request_BadRequest") from exc
    if app_id is not None:
        stmt = stmt.where(joined.c.id == app_id)
    for key in order:
        stmt = stmt.order_by(key.field.column.desc() if key.descending else key.field.column.asc())
    stmt = stmt.order_by(joined.c.transactionCount.desc(), joined.c.id)
    if top is not None:
        stmt = stmt.limit(top)
    out = []
    for row in (await session.execute(stmt)).mappings():
        g = governed[row["id"]]
        last_seen = row["lastSeen"]
        out.append(
            {
                "id": row["id"],
                "displayName": row["displayName"],
                "category": row["category"],
                "domains": list(g.app.domains),
                "riskScore": row["riskScore"],
                "tags": g.all_tags,
                "userCount": int(row["userCount"]),
                "ipAddressCount": int(row["ipAddressCount"]),
                "transactionCount": int(row["transactionCount"]),
                "uploadNetworkTrafficInBytes": int(row["uploadNetworkTrafficInBytes"]),
                "downloadNetworkTrafficInBytes": int(row["downloadNetworkTrafficInBytes"]),
                "lastSeenDateTime": f"{_as_date(last_seen).isoformat()}T00:00:00Z" if last_seen else None,
            }
        )
    return out


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def app_users(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, app_id: str
) -> list[str]:
    return await _distinct(session, tenant_id, stream_id, days, app_id, DiscoveryAggregate.user_name)


async def app_ip_addresses(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, app_id: str
) -> list[str]:
    return await _distinct(session, tenant_id, stream_id, days, app_id, DiscoveryAggregate.ip_address)


async def _distinct(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, app_id: str, col: Any
) -> list[str]:
    cutoff = period_cutoff(days)
    await stream(session, tenant_id, stream_id)
    a = DiscoveryAggregate
    stmt = (
        AggregateRepository(session, tenant_id)
        .select(col)
        .where(a.stream_id == stream_id, a.app_id == app_id, a.day >= cutoff, col != "")
        .distinct()
        .order_by(col)
    )
    found = [str(v) for v in (await session.execute(stmt)).scalars()]
    if not found:
        seen = await session.execute(
            AggregateRepository(session, tenant_id).select(a.app_id).where(
                a.stream_id == stream_id, a.app_id == app_id, a.day >= cutoff
            ).limit(1)
        )  # fmt: skip
        if seen.first() is None:
            raise NotFound(f"App {app_id!r} was not discovered in this stream in the period.")
    return found


async def unmatched_destinations(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, *, top: int = 100
) -> list[dict[str, Any]]:
    """Traffic to destinations no catalogue app claims, the largest first."""
    cutoff = period_cutoff(days)
    await stream(session, tenant_id, stream_id)
    u = DiscoveryUnmatched
    traffic = func.sum(u.traffic).label("traffic")
    stmt = (
        UnmatchedRepository(session, tenant_id)
        .select(
            u.destination,
            func.sum(u.transactions).label("transactions"),
            func.sum(u.blocked).label("blocked"),
            func.sum(u.bytes_up).label("bytes_up"),
            func.sum(u.bytes_down).label("bytes_down"),
            traffic,
        )
        .where(u.stream_id == stream_id, u.day >= cutoff)
        .group_by(u.destination)
        .order_by(traffic.desc(), u.destination)
        .limit(top)
    )
    return [
        {
            "destination": r.destination,
            "transactionCount": int(r.transactions),
            "blockedCount": int(r.blocked),
            "uploadNetworkTrafficInBytes": int(r.bytes_up),
            "downloadNetworkTrafficInBytes": int(r.bytes_down),
            "totalNetworkTrafficInBytes": int(r.traffic),
        }
        for r in (await session.execute(stmt))
    ]


async def app_info(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, app_id: str
) -> dict[str, Any]:
    """Graph's ``discoveredCloudAppInfo`` of an app discovered in the stream over the period: the catalogue's
    facts under their attribute names, a yes/no fact as ``cloudAppInfoState`` (``true`` / ``false``), and
    every scored attribute the catalogue has no sourced fact for as ``unknown``. ``sources`` names where each
    known fact was read."""
    cutoff = period_cutoff(days)
    await stream(session, tenant_id, stream_id)
    a = DiscoveryAggregate
    seen = await session.execute(
        AggregateRepository(session, tenant_id)
        .select(a.app_id)
        .where(a.stream_id == stream_id, a.app_id == app_id, a.day >= cutoff)
        .limit(1)
    )
    if seen.first() is None:
        raise NotFound(f"App {app_id!r} was not discovered in this stream in the period.")
    app = (await governed_apps(session, tenant_id))[app_id].app
    info: dict[str, Any] = {"id": app.id, "vendor": app.vendor}
    for name in ATTRIBUTES:
        info[name] = "unknown"
    sources: dict[str, dict[str, str]] = {}
    for name, fact in app.risk.items():
        value = fact.get("value")
        info[name] = ("true" if value else "false") if isinstance(value, bool) else value
        sources[name] = {"source": str(fact.get("source", "")), "note": str(fact.get("note", ""))}
    info["sources"] = sources
    return info
