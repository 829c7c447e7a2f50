"""Every identity protection query, tenant-scoped through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, case, func, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.repository import TenantRepository
from trustplane.protection.models import (
    FeatureCount,
    LeakedCredential,
    RiskDetection,
    RiskyUser,
    RiskyUserHistory,
    SignIn,
    ThreatIntelAddress,
)

ACTIVE_STATES = ("atRisk", "confirmedCompromised")


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


class SignInRepository(TenantRepository[SignIn]):
    model = SignIn

    async def by_event(self, source: str, external_ids: Sequence[str]) -> dict[str, SignIn]:
        if not external_ids:
            return {}
        stmt = self.select().where(SignIn.source == source, SignIn.external_id.in_(list(external_ids)))
        return {s.external_id or "": s for s in (await self.session.execute(stmt)).scalars()}

    async def previous_location(
        self, user_id: str, before: datetime, *, exclude_id: str | None = None
    ) -> SignIn | None:
        """The user's latest earlier successful sign-in with coordinates from a public, non-anonymiser
        address (``exclude_id``: the sign-in being assessed, when it is already stored)."""
        stmt = (
            self.select()
            .where(
                SignIn.user_id == user_id,
                SignIn.created_at <= before,
                SignIn.error_code == 0,
                SignIn.latitude.is_not(None),
                SignIn.longitude.is_not(None),
                SignIn.network_kind.is_(None),
            )
            .order_by(SignIn.created_at.desc())
            .limit(1)
        )
        if exclude_id is not None:
            stmt = stmt.where(SignIn.id != exclude_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def spray_stats(
        self,
        ip_address: str,
        since: datetime,
        *,
        until: datetime | None = None,
        exclude_id: str | None = None,
    ) -> tuple[int, int, int]:
        """(distinct accounts, attempts, attempts with a wrong password) from this address between ``since``
        and ``until``, leaving out ``exclude_id``."""
        failed = func.sum(case((SignIn.password_valid.is_(False), 1), else_=0))
        stmt = self.select(
            func.count(func.distinct(SignIn.user_principal_name)), func.count(SignIn.id), failed
        ).where(SignIn.ip_address == ip_address, SignIn.created_at >= since)
        if until is not None:
            stmt = stmt.where(SignIn.created_at <= until)
        if exclude_id is not None:
            stmt = stmt.where(SignIn.id != exclude_id)
        accounts, attempts, wrong = (await self.session.execute(stmt)).one()
        return int(accounts), int(attempts), int(wrong or 0)


class RiskDetectionRepository(TenantRepository[RiskDetection]):
    model = RiskDetection

    async def active_for(self, user_id: str) -> Sequence[RiskDetection]:
        stmt = self.select().where(
            RiskDetection.user_id == user_id, RiskDetection.risk_state.in_(ACTIVE_STATES)
        )
        return (await self.session.execute(stmt)).scalars().all()


class RiskyUserRepository(TenantRepository[RiskyUser]):
    model = RiskyUser

    async def stale_low(self, before: datetime) -> Sequence[RiskyUser]:
        stmt = self.select().where(RiskyUser.risk_level == "low", RiskyUser.risk_last_updated_at < before)
        return (await self.session.execute(stmt)).scalars().all()


class RiskyUserHistoryRepository(TenantRepository[RiskyUserHistory]):
    model = RiskyUserHistory


class ThreatIntelRepository(TenantRepository[ThreatIntelAddress]):
    model = ThreatIntelAddress

    async def cidrs(self) -> list[tuple[str, str]]:
        stmt = self.select(ThreatIntelAddress.kind, ThreatIntelAddress.cidr)
        return [(k, c) for k, c in (await self.session.execute(stmt)).all()]

    async def add_many(self, kind: str, cidrs: Iterable[tuple[str, str | None]]) -> None:
        rows = [{"tenant_id": self.tenant_id, "kind": kind, "cidr": c, "description": d} for c, d in cidrs]
        if rows:
            stmt = _insert(self.session, ThreatIntelAddress).values(rows).on_conflict_do_nothing()
            await self.session.execute(stmt)


class LeakedCredentialRepository(TenantRepository[LeakedCredential]):
    model = LeakedCredential

    async def contains(self, sha1: str) -> bool:
        stmt = self.select(LeakedCredential.id).where(LeakedCredential.sha1 == sha1).limit(1)
        return (await self.session.execute(stmt)).first() is not None

    async def add_many(self, hashes: Sequence[str]) -> int:
        before = await self.count()
        for start in range(0, len(hashes), 1000):
            rows = [{"tenant_id": self.tenant_id, "sha1": h} for h in hashes[start : start + 1000]]
            await self.session.execute(
                _insert(self.session, LeakedCredential).values(rows).on_conflict_do_nothing()
            )
        return await self.count() - before

    async def count(self) -> int:
        return int((await self.session.execute(self.select(func.count(LeakedCredential.id)))).scalar_one())


class FeatureCountRepository(TenantRepository[FeatureCount]):
    model = FeatureCount

    async def profile(
        self, user_id: str, keys: Sequence[tuple[str, str]]
    ) -> tuple[list[tuple[str, str, str, int, datetime]], tuple[str, datetime] | None]:
        """The user's and the tenant's counts for the (feature, value) ``keys`` and the user's stored risk
        (level, last updated), in one statement (the risk row rides along the counts as subject "!risk").
        One branch per feature, so that every lookup is a primary-key probe on both databases: with the
        value alone the tenant's rows (every address and agent it has seen) were scanned, and neither
        planner probes a list of (feature, value) pairs reliably."""
        by_feature: dict[str, list[str]] = {}
        for feature, value in keys:
            by_feature.setdefault(feature, []).append(value)
        counts = [
            select(
                FeatureCount.subject,
                FeatureCount.feature,
                FeatureCount.value,
                FeatureCount.count,
                FeatureCount.first_seen_at,
            ).where(
                FeatureCount.tenant_id == self.tenant_id,
                FeatureCount.subject.in_([user_id, "*"]),
                FeatureCount.feature == feature,
                FeatureCount.value.in_(values),
            )
            for feature, values in by_feature.items()
        ]
        risk = select(
            literal("!risk", String(36)),
            RiskyUser.risk_level,
            RiskyUser.risk_state,
            literal(0, Integer),
            RiskyUser.risk_last_updated_at,
        ).where(RiskyUser.tenant_id == self.tenant_id, RiskyUser.id == user_id)
        rows: list[tuple[str, str, str, int, datetime]] = []
        level: tuple[str, datetime] | None = None
        for subject, feature, value, count, seen in (
            await self.session.execute(union_all(*counts, risk))
        ).all():
            if subject == "!risk":
                level = (feature, seen)
            else:
                rows.append((subject, feature, value, count, seen))
        return rows, level

    async def increment(self, rows: Sequence[tuple[str, str, str, int]], at: datetime) -> None:
        """Add ``count`` to each (subject, feature, value), creating the rows that do not exist yet."""
        if not rows:
            return
        values = [
            {
                "tenant_id": self.tenant_id,
                "subject": s,
                "feature": f,
                "value": v,
                "count": n,
                "first_seen_at": at,
            }
            for s, f, v, n in rows
        ]
        stmt = _insert(self.session, FeatureCount).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "subject", "feature", "value"],
            set_={"count": FeatureCount.count + stmt.excluded.count},
        )
        await self.session.execute(stmt)
