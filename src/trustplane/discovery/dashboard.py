"""TrustPlane's own cloud discovery report, for what Graph's discovered-apps resources do not cover (MCAS's
dashboard: top categories, top users and source IPs, traffic over time, the app risk overview). Every figure
is read from the aggregates (app, user, IP and day) of one stream over a period; lists are paged (``skip`` /
``top``) and carry their total."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.errors import BadRequest
from trustplane.discovery.governance import GovernedApp, governed_apps
from trustplane.discovery.models import DiscoveryAggregate
from trustplane.discovery.report import period_cutoff, stream
from trustplane.discovery.repository import AggregateRepository

MAX_TOP = 1000
# The bands the risk overview groups scores into (TrustPlane's choice; the per-score counts come with them).
RISK_BANDS = (("high", 0, 4), ("medium", 5, 7), ("low", 8, 10))


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    total: int
    skip: int

    def as_dict(self) -> dict[str, Any]:
        return {"data": self.data, "total": self.total, "hasNext": self.skip + len(self.data) < self.total}


def check_paging(skip: int, top: int) -> None:
    if skip < 0:
        raise BadRequest("skip must be 0 or more.")
    if not 1 <= top <= MAX_TOP:
        raise BadRequest(f"top must be from 1 to {MAX_TOP}.")


def _usage_columns() -> list[Any]:
    a = DiscoveryAggregate
    return [
        func.sum(a.transactions).label("transactions"),
        func.sum(a.blocked).label("blocked"),
        func.sum(a.bytes_up).label("bytes_up"),
        func.sum(a.bytes_down).label("bytes_down"),
        func.sum(a.traffic).label("traffic"),
    ]


def _usage(row: Any) -> dict[str, int]:
    return {
        "transactionCount": int(row.transactions or 0),
        "blockedCount": int(row.blocked or 0),
        "uploadNetworkTrafficInBytes": int(row.bytes_up or 0),
        "downloadNetworkTrafficInBytes": int(row.bytes_down or 0),
        "totalNetworkTrafficInBytes": int(row.traffic or 0),
    }


async def _scope(session: AsyncSession, tenant_id: str, stream_id: str, days: int) -> tuple[Any, date]:
    cutoff = period_cutoff(days)
    await stream(session, tenant_id, stream_id)
    return AggregateRepository(session, tenant_id), cutoff


async def _per_app(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int
) -> tuple[list[Any], dict[str, GovernedApp]]:
    repo, cutoff = await _scope(session, tenant_id, stream_id, days)
    a = DiscoveryAggregate
    stmt = (
        repo.select(a.app_id, *_usage_columns())
        .where(a.stream_id == stream_id, a.day >= cutoff)
        .group_by(a.app_id)
    )
    rows = list(await session.execute(stmt))
    return rows, await governed_apps(session, tenant_id)


async def top_categories(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, *, skip: int = 0, top: int = 50
) -> Page:
    """Usage per catalogue category, the most traffic first, with the share of it by sanctioned apps."""
    check_paging(skip, top)
    rows, governed = await _per_app(session, tenant_id, stream_id, days)
    users = await _distinct_per_app(session, tenant_id, stream_id, days, DiscoveryAggregate.user_name)
    by_category: dict[str, dict[str, Any]] = {}
    for row in rows:
        g = governed.get(row.app_id)
        if g is None:
            continue
        entry = by_category.setdefault(
            g.app.category, {"category": g.app.category, "appCount": 0, "sanctionedTransactionCount": 0}
        )
        entry["appCount"] += 1
        for key, value in _usage(row).items():
            entry[key] = entry.get(key, 0) + value
        if g.status == "sanctioned":
            entry["sanctionedTransactionCount"] += int(row.transactions or 0)
        entry.setdefault("_users", set()).update(users.get(row.app_id, ()))
    ordered = sorted(
        by_category.values(),
        key=lambda e: (-e["totalNetworkTrafficInBytes"], -e["transactionCount"], e["category"]),
    )
    for entry in ordered:
        entry["userCount"] = len(entry.pop("_users", ()))
    return Page(ordered[skip : skip + top], len(ordered), skip)


async def _distinct_per_app(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, col: Any
) -> dict[str, set[str]]:
    repo, cutoff = await _scope(session, tenant_id, stream_id, days)
    a = DiscoveryAggregate
    stmt = repo.select(a.app_id, col).where(a.stream_id == stream_id, a.day >= cutoff, col != "").distinct()
    out: dict[str, set[str]] = {}
    for app_id, value in await session.execute(stmt):
        out.setdefault(app_id, set()).add(value)
    return out


async def _top_entities(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, col: Any, skip: int, top: int
) -> tuple[list[Any], int]:
    check_paging(skip, top)
    repo, cutoff = await _scope(session, tenant_id, stream_id, days)
    a = DiscoveryAggregate
    where = (a.stream_id == stream_id, a.day >= cutoff, col != "")
    total = (await session.execute(repo.select(func.count(func.distinct(col))).where(*where))).scalar_one()
    usage = _usage_columns()
    stmt: Select[Any] = (
        repo.select(col.label("entity"), func.count(func.distinct(a.app_id)).label("apps"), *usage)
        .where(*where)
        .group_by(col)
        .order_by(usage[-1].desc(), usage[0].desc(), col)
        .offset(skip)
        .limit(top)
    )
    return list(await session.execute(stmt)), int(total)


async def top_users(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, *, skip: int = 0, top: int = 50
) -> Page:
    """Users by traffic to catalogue apps (anonymised names stay anonymised)."""
    rows, total = await _top_entities(
        session, tenant_id, stream_id, days, DiscoveryAggregate.user_name, skip, top
    )
    data = [{"userIdentifier": r.entity, "appCount": int(r.apps), **_usage(r)} for r in rows]
    return Page(data, total, skip)


async def top_ip_addresses(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int, *, skip: int = 0, top: int = 50
) -> Page:
    rows, total = await _top_entities(
        session, tenant_id, stream_id, days, DiscoveryAggregate.ip_address, skip, top
    )
    data = [{"ipAddress": r.entity, "appCount": int(r.apps), **_usage(r)} for r in rows]
    return Page(data, total, skip)


async def traffic_over_time(
    session: AsyncSession, tenant_id: str, stream_id: str, days: int
) -> list[dict[str, Any]]:
    """One point per day that has traffic, oldest first: transactions, bytes, distinct users and apps."""
    repo, cutoff = await _scope(session, tenant_id, stream_id, days)
    a = DiscoveryAggregate
    stmt = (
        repo.select(
            a.day,
            func.count(func.distinct(func.nullif(a.user_name, ""))).label("users"),
            func.count(func.distinct(a.app_id)).label("apps"),
            *_usage_columns(),
        )
        .where(a.stream_id == stream_id, a.day >= cutoff)
        .group_by(a.day)
        .order_by(a.day)
    )
    out = []
    for row in await session.execute(stmt):
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day)[:10])
        counts = {"userCount": int(row.users), "appCount": int(row.apps)}
        out.append({"date": day.isoformat(), **counts, **_usage(row)})
    return out


def _zero() -> dict[str, int]:
    return {"appCount": 0, "transactionCount": 0, "totalNetworkTrafficInBytes": 0}


async def risk_overview(session: AsyncSession, tenant_id: str, stream_id: str, days: int) -> dict[str, Any]:
    """Discovered apps and their traffic per risk score (0-10, this tenant's metrics and overrides) and per
    band; apps without a score (nothing known about them) are counted apart."""
    rows, governed = await _per_app(session, tenant_id, stream_id, days)
    scores: dict[str, dict[str, int]] = {}
    bands = {name: _zero() for name in [*(b[0] for b in RISK_BANDS), "unscored"]}
    for row in rows:
        g = governed.get(row.app_id)
        if g is None:
            continue
        total = g.risk.total
        key = "unscored" if total is None else str(total)
        band = "unscored" if total is None else next(n for n, lo, hi in RISK_BANDS if lo <= total <= hi)
        for target in (scores.setdefault(key, _zero()), bands[band]):
            target["appCount"] += 1
            target["transactionCount"] += int(row.transactions or 0)
            target["totalNetworkTrafficInBytes"] += int(row.traffic or 0)
    by_score = [{"riskScore": None if k == "unscored" else int(k), **v} for k, v in scores.items()]
    by_score.sort(key=lambda e: -1 if e["riskScore"] is None else e["riskScore"])
    return {
        "bands": [
            {"band": name, "minScore": lo, "maxScore": hi, **bands[name]} for name, lo, hi in RISK_BANDS
        ]
        + [{"band": "unscored", "minScore": None, "maxScore": None, **bands["unscored"]}],
        "byScore": by_score,
    }
