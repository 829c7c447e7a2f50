"""Governance of discovered apps: sanctioned / unsanctioned / monitored, custom tags, a risk score override
with its justification, and what follows from it (the domains block scripts carry). Every change is a
durable, audited event. No FastAPI, never commits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound
from trustplane.core.events import Actor, EventSpec, emit
from trustplane.discovery.catalog import CatalogApp, shipped_catalog
from trustplane.discovery.catalog.risk import RiskScore, ScoreSettings
from trustplane.discovery.models import DiscoveryAppGovernance, DiscoverySettings
from trustplane.discovery.repository import GovernanceRepository, SettingsRepository

STATUSES = ("sanctioned", "unsanctioned", "monitored")
TAG_NAMES = {"sanctioned": "Sanctioned", "unsanctioned": "Unsanctioned", "monitored": "Monitored"}
MAX_TAGS = 20
UNSET: Any = object()


@dataclass(frozen=True)
class GovernedApp:
    app: CatalogApp
    status: str | None
    tags: list[str]
    risk: RiskScore
    note: str | None

    @property
    def all_tags(self) -> list[str]:
        """Graph's ``tags``: the governance status by its display name, then the custom tags."""
        return ([TAG_NAMES[self.status]] if self.status else []) + self.tags


def catalog_app(app_id: str) -> CatalogApp:
    app = shipped_catalog().apps.get(app_id)
    if app is None:
        raise NotFound(f"No app {app_id!r} in the catalogue.")
    return app


async def score_settings(session: AsyncSession, tenant_id: str) -> ScoreSettings:
    current = await SettingsRepository(session, tenant_id).current()
    data = (current.score_settings if current is not None else None) or {}
    return ScoreSettings(
        category_importance=dict(data.get("categoryImportance", {})),
        attribute_importance=dict(data.get("attributeImportance", {})),
        unknown_counts_against=bool(data.get("unknownCountsAgainst", False)),
    )


async def set_score_settings(
    session: AsyncSession, tenant_id: str, actor: Actor, data: dict[str, Any]
) -> ScoreSettings:
    """The tenant's score metrics: importance per category and per attribute (ignored, low, medium, high,
    veryHigh) and whether unknown values count against an app. Audited."""
    unknown = sorted(set(data) - {"categoryImportance", "attributeImportance", "unknownCountsAgainst"})
    if unknown:
        raise BadRequest(f"Unknown properties {unknown}.")
    categories, attributes = data.get("categoryImportance", {}), data.get("attributeImportance", {})
    against = data.get("unknownCountsAgainst", False)
    if not isinstance(categories, dict) or not isinstance(attributes, dict) or not isinstance(against, bool):
        raise BadRequest(
            "categoryImportance and attributeImportance are objects; unknownCountsAgainst a boolean."
        )
    settings = ScoreSettings(dict(categories), dict(attributes), against)
    try:
        settings.validate()
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    repo = SettingsRepository(session, tenant_id)
    current = await repo.current(for_update=True)
    if current is None:
        current = repo.add(DiscoverySettings(score_settings={}))
    metrics = {
        "categoryImportance": settings.category_importance,
        "attributeImportance": settings.attribute_importance,
        "unknownCountsAgainst": settings.unknown_counts_against,
    }
    # The row also keeps the anonymisation settings (discovery.anonymization): kept as they are.
    kept = {k: v for k, v in (current.score_settings or {}).items() if k == "anonymization"}
    current.score_settings = {**kept, **metrics}
    current.modified_at = utcnow()
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("discovery.scoreMetrics.set", "discoverySettings", tenant_id, metrics),
    )
    return settings


def _governed(app: CatalogApp, row: DiscoveryAppGovernance | None, settings: ScoreSettings) -> GovernedApp:
    override = row.risk_override if row is not None else None
    return GovernedApp(
        app=app,
        status=row.status if row is not None else None,
        tags=list(row.tags or []) if row is not None else [],
        risk=app.score(settings, override),
        note=row.note if row is not None else None,
    )


async def governed_apps(session: AsyncSession, tenant_id: str) -> dict[str, GovernedApp]:
    """Every catalogue app with this tenant's decisions and score."""
    settings = await score_settings(session, tenant_id)
    rows = {r.app_id: r for r in await GovernanceRepository(session, tenant_id).all()}
    return {
        app_id: _governed(app, rows.get(app_id), settings) for app_id, app in shipped_catalog().apps.items()
    }


async def governed_app(session: AsyncSession, tenant_id: str, app_id: str) -> GovernedApp:
    app = catalog_app(app_id)
    row = await GovernanceRepository(session, tenant_id).of_app(app_id)
    return _governed(app, row, await score_settings(session, tenant_id))


async def govern_app(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    app_id: str,
    *,
    status: str | None = UNSET,
    tags: list[str] = UNSET,
    risk_override: int | None = UNSET,
    note: str | None = UNSET,
) -> GovernedApp:
    """Change an app's governance; only the arguments given change. Audited with before and after."""
    app = catalog_app(app_id)
    if status is not UNSET and status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {list(STATUSES)} or null.")
    if tags is not UNSET:
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and 0 < len(t.strip()) <= 64 for t in tags
        ):
            raise BadRequest("tags must be a list of non-empty strings of at most 64 characters.")
        if len(tags) > MAX_TAGS:
            raise BadRequest(f"At most {MAX_TAGS} custom tags per app.")
        if any(t.strip().lower() in STATUSES for t in tags):
            raise BadRequest("Sanctioned, Unsanctioned and Monitored are set by status, not as custom tags.")
    if risk_override is not UNSET and risk_override is not None:
        if (
            isinstance(risk_override, bool)
            or not isinstance(risk_override, int)
            or not 0 <= risk_override <= 10
        ):
            raise BadRequest("riskScoreOverride must be an integer from 0 to 10, or null.")
    if note is not UNSET and note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise BadRequest("note must be a string of at most 2000 characters.")
    repo = GovernanceRepository(session, tenant_id)
    row = await repo.of_app(app_id)
    if row is None:
        row = repo.add(DiscoveryAppGovernance(app_id=app_id, tags=[]))
    before = {"status": row.status, "tags": list(row.tags or []), "riskOverride": row.risk_override}
    if status is not UNSET:
        row.status = status
    if tags is not UNSET:
        row.tags = sorted({t.strip() for t in tags})
    if risk_override is not UNSET:
        row.risk_override = risk_override
    if note is not UNSET:
        row.note = note
    row.modified_at = utcnow()
    after = {"status": row.status, "tags": list(row.tags or []), "riskOverride": row.risk_override}
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec(
            "discovery.app.governed",
            "discoveredApp",
            app_id,
            {"app": app.name, "before": before, "after": after, "note": row.note},
        ),
    )
    return _governed(app, row, await score_settings(session, tenant_id))


async def blocked_domains(session: AsyncSession, tenant_id: str) -> list[str]:
    """The domains of every unsanctioned app, sorted: what every block script carries."""
    catalog = shipped_catalog()
    domains: set[str] = set()
    for row in await GovernanceRepository(session, tenant_id).all():
        app = catalog.apps.get(row.app_id)
        if row.status == "unsanctioned" and app is not None:
            domains.update(app.domains)
    return sorted(domains)


def etag_of(domains: list[str]) -> str:
    return '"' + hashlib.sha256("\n".join(domains).encode()).hexdigest()[:32] + '"'
