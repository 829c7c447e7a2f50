"""Every identity protection query, tenant-scoped through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.db import driver_rows
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


_PROFILES: dict[tuple[str, ...], Any] = {}
_UPSERTS: dict[str, Any] = {}
_COUNT_COLUMNS = (
    FeatureCount.subject,
    FeatureCount.feature,
    FeatureCount.value,
    FeatureCount.count,
    FeatureCount.first_seen_at,
)


def _risk_branch() -> Any:
    """The user's stored risk as a row of a counts read: subject "!risk", feature = level, value = state,
    first seen = last updated (bound parameters: tenant, user)."""
    return select(
        literal("!risk", String(36)),
        RiskyUser.risk_level,
        RiskyUser.risk_state,
        literal(0, Integer),
        RiskyUser.risk_last_updated_at,
    ).where(RiskyUser.tenant_id == bindparam("tenant"), RiskyUser.id == bindparam("user"))


def _profile_statement(features: tuple[str, ...]) -> Any:
    """The profile read for these features, built once (bound parameters: tenant, user, subjects, v<i>)."""
    stmt = _PROFILES.get(features)
    if stmt is None:
        counts = [
            select(*_COUNT_COLUMNS).where(
                FeatureCount.tenant_id == bindparam("tenant"),
                FeatureCount.subject.in_(bindparam("subjects", expanding=True)),
                FeatureCount.feature == feature,
                FeatureCount.value.in_(bindparam(f"v{i}", expanding=True)),
            )
            for i, feature in enumerate(features)
        ]
        stmt = _PROFILES[features] = union_all(*counts, _risk_branch())
    return stmt


_COUNTS: dict[tuple[tuple[tuple[str, int], ...], bool], Any] = {}


def _history_start() -> Any:
    """A user's row's first-seen time when it is the history's start (ip #total), else NULL: a user has a row
    per value seen, and turning each stored time back into a datetime was most of a user read's cost."""
    return case(
        (and_(FeatureCount.feature == "ip", FeatureCount.value == "#total"), FeatureCount.first_seen_at),
        else_=null(),
    )


def _counts_statement(shape: tuple[tuple[str, int], ...], with_user: bool) -> Any:
    """The read ``decide`` makes when its cache lacks something, built once per shape: the tenant-wide
    counts ("*") of ``n`` values of each feature (bound parameters v<i>_<j>: one per value, so the compiled
    statement is cached and reused, where an expanding IN is compiled again on every call; each branch a
    primary-key probe, as in ``_profile_statement``) and, ``with_user``, every count of the user (bound
    parameter ``user``) and the user's stored risk (subject "!risk")."""
    stmt = _COUNTS.get((shape, with_user))
    if stmt is None:
        columns = _COUNT_COLUMNS
        branches = [
            select(*columns).where(
                FeatureCount.tenant_id == bindparam("tenant"),
                FeatureCount.subject == "*",
                FeatureCount.feature == feature,
                FeatureCount.value.in_([bindparam(f"v{i}_{j}") for j in range(n)]),
            )
            for i, (feature, n) in enumerate(shape)
        ]
        if with_user:
            user = select(*columns[:4], _history_start()).where(
                FeatureCount.tenant_id == bindparam("tenant"), FeatureCount.subject == bindparam("user")
            )
            branches = [user, *branches, _risk_branch()]
        stmt = _COUNTS[(shape, with_user)] = union_all(*branches)
    return stmt


def _upsert_statement(dialect: str) -> Any:
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(FeatureCount)
        stmt = _UPSERTS[dialect] = insert.on_conflict_do_update(
            index_elements=["tenant_id", "subject", "feature", "value"],
            set_={"count": FeatureCount.count + insert.excluded.count},
        )
    return stmt


_TABLE_CHUNK = 20_000


@lru_cache(maxsize=4)
def _table_statement(chunk: int) -> Any:
    """The next ``chunk`` tenant-wide rows after (feature, value), in key order: a range of the primary key
    on both databases (bound parameters: tenant, feature, value)."""
    return (
        select(FeatureCount.feature, FeatureCount.value, FeatureCount.count)
        .where(
            FeatureCount.tenant_id == bindparam("tenant"),
            FeatureCount.subject == "*",
            or_(
                FeatureCount.feature > bindparam("feature"),
                and_(FeatureCount.feature == bindparam("feature"), FeatureCount.value > bindparam("value")),
            ),
        )
        .order_by(FeatureCount.feature, FeatureCount.value)
        .limit(chunk)
    )


_PROFILES_AT_ONCE = 200
# Every count and the stored risk of several users (bound parameters: tenant, users — expanding): the batch
# form of ``_counts_statement``'s user and risk branches.
_MANY_PROFILES = union_all(
    select(
        literal("count", String(8)),
        FeatureCount.subject,
        FeatureCount.feature,
        FeatureCount.value,
        FeatureCount.count,
        _history_start(),
    ).where(
        FeatureCount.tenant_id == bindparam("tenant"),
        FeatureCount.subject.in_(bindparam("users", expanding=True)),
    ),
    select(
        literal("risk", String(8)),
        RiskyUser.id,
        RiskyUser.risk_level,
        RiskyUser.risk_state,
        literal(0, Integer),
        RiskyUser.risk_last_updated_at,
    ).where(RiskyUser.tenant_id == bindparam("tenant"), RiskyUser.id.in_(bindparam("users", expanding=True))),
)


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
        params: dict[str, Any] = {"tenant": self.tenant_id, "user": user_id, "subjects": [user_id, "*"]}
        params.update({f"v{i}": values for i, values in enumerate(by_feature.values())})
        stmt = _profile_statement(tuple(by_feature))
        rows: list[tuple[str, str, str, int, datetime]] = []
        level: tuple[str, datetime] | None = None
        for subject, feature, value, count, seen in (await self.session.execute(stmt, params)).all():
            if subject == "!risk":
                level = (feature, seen)
            else:
                rows.append((subject, feature, value, count, seen))
        return rows, level

    async def counts(
        self, user_id: str | None, tenant_keys: Sequence[tuple[str, str]]
    ) -> tuple[
        dict[tuple[str, str], int], datetime | None, dict[tuple[str, str], int], tuple[str, datetime] | None
    ]:
        """For a ``user_id``, every count of the user ((feature, value) -> count), when the user's history
        started (ip #total's first-seen time) and the user's stored risk (level, last updated); and the
        tenant-wide count of each (feature, value) in ``tenant_keys`` (0 when there is no row): one
        statement, so a user's first read in a process is one round trip."""
        by_feature: dict[str, list[str]] = {}
        for feature, value in tenant_keys:
            by_feature.setdefault(feature, []).append(value)
        params: dict[str, Any] = {"tenant": self.tenant_id, "user": user_id}
        for i, values in enumerate(by_feature.values()):
            params.update({f"v{i}_{j}": value for j, value in enumerate(values)})
        shape = tuple((feature, len(values)) for feature, values in by_feature.items())
        stmt = _counts_statement(shape, user_id is not None)
        mine: dict[tuple[str, str], int] = {}
        first_seen: datetime | None = None
        tenant = dict.fromkeys(tenant_keys, 0)
        level: tuple[str, datetime] | None = None
        for subject, feature, value, count, seen in await driver_rows(self.session, stmt, params, small=True):
            if subject == "!risk":
                level = (feature, seen)
            elif subject == "*":
                tenant[(feature, value)] = int(count)
            else:
                mine[(feature, value)] = int(count)
                if seen is not None:
                    first_seen = seen  # only ip #total's is selected
        return mine, first_seen, tenant, level

    async def profiles(
        self, user_ids: Sequence[str]
    ) -> dict[str, tuple[dict[tuple[str, str], int], datetime | None, tuple[str, datetime] | None]]:
        """``counts`` for many users at once (a batch's): user id -> (every count of the user, when the
        user's history started, the stored risk), in one statement per ``_PROFILES_AT_ONCE`` users."""
        out: dict[str, tuple[dict[tuple[str, str], int], datetime | None, tuple[str, datetime] | None]] = {}
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), _PROFILES_AT_ONCE):
            some = ids[start : start + _PROFILES_AT_ONCE]
            counts: dict[str, dict[tuple[str, str], int]] = {u: {} for u in some}
            first: dict[str, datetime | None] = dict.fromkeys(some)
            risks: dict[str, tuple[str, datetime] | None] = dict.fromkeys(some)
            params = {"tenant": self.tenant_id, "users": some}
            for kind, subject, feature, value, count, seen in await self.session.execute(
                _MANY_PROFILES, params
            ):
                if kind == "risk":
                    risks[subject] = (feature, seen)
                else:
                    counts[subject][(feature, value)] = int(count)
                    if seen is not None:
                        first[subject] = seen  # only ip #total's is selected
            out.update({u: (counts[u], first[u], risks[u]) for u in some})
        return out

    async def tenant_table(self, limit: int, into: Any) -> bool:
        """Every tenant-wide count of the tenant, as (feature, value, count) rows in (feature, value) order
        passed to ``into.add`` a chunk at a time (a keyset read per ``_TABLE_CHUNK`` rows, straight on the
        driver: a table of 300,000 rows is read without holding them all, and other requests run between the
        chunks); False, having stopped, when there are more than ``limit``."""
        # A table over the limit is found by one probe of the key's order (the index alone), not by reading
        # the limit's worth of rows first.
        beyond = (
            self.select(FeatureCount.value)
            .where(FeatureCount.subject == "*")
            .order_by(FeatureCount.feature, FeatureCount.value)
            .offset(limit)
            .limit(1)
        )
        if (await self.session.execute(beyond)).first() is not None:
            return False
        read = 0
        after: tuple[str, str] = ("", "")
        chunk = _TABLE_CHUNK
        while True:
            params = {"tenant": self.tenant_id, "feature": after[0], "value": after[1]}
            rows = await driver_rows(self.session, _table_statement(chunk), params)
            read += len(rows)
            if read > limit:
                return False
            into.add(rows)
            if len(rows) < chunk:
                return True
            after = (rows[-1][0], rows[-1][1])

    async def increment(self, rows: Sequence[tuple[str, str, str, int]], at: datetime) -> None:
        """Add ``count`` to each (subject, feature, value), creating the rows that do not exist yet."""
        if not rows:
            return
        values = [
            {"tenant_id": self.tenant_id, "subject": s, "feature": f, "value": v, "count": n}
            | {"first_seen_at": at}
            for s, f, v, n in rows
        ]
        # One statement built once per dialect and executed for many rows (the driver's executemany): a
        # multi-row VALUES statement is compiled afresh on every call, which cost more than the database.
        await self.session.execute(_upsert_statement(self.session.get_bind().dialect.name), values)
