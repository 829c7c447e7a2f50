"""Every identity protection query, tenant-scoped through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.db import driver_rows
from trustplane.core.repository import TenantRepository
from trustplane.directory.models import User
from trustplane.protection import features
from trustplane.protection.models import (
    FeatureCount,
    LeakedCredential,
    RiskDetection,
    RiskyUser,
    RiskyUserHistory,
    SignIn,
    ThreatIntelAddress,
    UserFeatureCounts,
)

ACTIVE_STATES = ("atRisk", "confirmedCompromised")


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


_UPSERTS: dict[str, Any] = {}


@cache
def _tenant_counts_statement(shape: tuple[tuple[str, int], ...]) -> Any:
    """The tenant-wide counts ("*") of ``n`` values of each feature, built once per shape (bound parameters
    v<i>_<j>: one per value, so the compiled statement is cached and reused, where an expanding IN is
    compiled again on every call; each branch a primary-key probe on both databases)."""
    branches = [
        select(FeatureCount.feature, FeatureCount.value, FeatureCount.count).where(
            FeatureCount.tenant_id == bindparam("tenant"),
            FeatureCount.subject == "*",
            FeatureCount.feature == feature,
            FeatureCount.value.in_([bindparam(f"v{i}_{j}") for j in range(n)]),
        )
        for i, (feature, n) in enumerate(shape)
    ]
    return union_all(*branches)


def _user_counts_statement(many: bool) -> Any:
    """A directory user's (``many``: several users') counts row and stored risk, both outer-joined to the
    user, so one statement answers a user with neither (bound parameters: tenant and user, or users —
    expanding)."""
    users = User.id.in_(bindparam("users", expanding=True)) if many else User.id == bindparam("user")
    return (
        select(
            User.id,
            UserFeatureCounts.counts,
            UserFeatureCounts.revision,
            UserFeatureCounts.first_seen_at,
            RiskyUser.risk_level,
            RiskyUser.risk_last_updated_at,
        )
        .select_from(User)
        .outerjoin(
            UserFeatureCounts,
            and_(UserFeatureCounts.tenant_id == User.tenant_id, UserFeatureCounts.user_id == User.id),
        )
        .outerjoin(RiskyUser, and_(RiskyUser.tenant_id == User.tenant_id, RiskyUser.id == User.id))
        .where(User.tenant_id == bindparam("tenant"), users)
    )


_USER_COUNTS = _user_counts_statement(many=False)
_MANY_USER_COUNTS = _user_counts_statement(many=True)


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

    async def counts(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The tenant-wide count of each (feature, value) in ``keys`` (0 when there is no row), in one
        statement."""
        by_feature: dict[str, list[str]] = {}
        for feature, value in keys:
            by_feature.setdefault(feature, []).append(value)
        params: dict[str, Any] = {"tenant": self.tenant_id}
        for i, values in enumerate(by_feature.values()):
            params.update({f"v{i}_{j}": value for j, value in enumerate(values)})
        shape = tuple((feature, len(values)) for feature, values in by_feature.items())
        tenant = dict.fromkeys(keys, 0)
        if shape:
            for feature, value, count in await driver_rows(
                self.session, _tenant_counts_statement(shape), params, small=True
            ):
                tenant[(feature, value)] = int(count)
        return tenant

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
        """Add ``count`` to each (subject, feature, value), creating the rows that do not exist yet (the
        tenant-wide counts: subject "*"; a user's are ``UserCountsRepository``'s)."""
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


UserCounts = tuple[features.Table, int, datetime | None, tuple[str, datetime] | None]


def encode_counts(table: Mapping[str, Mapping[str, int]]) -> str:
    """A user's counts (``features.Table``) as ``protection_user_counts.counts`` stores them."""
    return orjson.dumps(table).decode()


def decode_counts(text: str | None) -> features.Table:
    """``encode_counts`` undone (None, a user without counts: empty)."""
    table: features.Table = orjson.loads(text) if text else {}
    return table


class UserCountsRepository(TenantRepository[UserFeatureCounts]):
    """Each user's feature counts, one row a user (``UserFeatureCounts``)."""

    model = UserFeatureCounts

    async def load(self, user_id: str) -> UserCounts | None:
        """The directory user's counts, their row's revision (0: no row yet), when the user's history started
        and the user's stored risk (level, last updated); None when the tenant has no such user. One
        statement, straight on the driver: a user's first decision in a process waits for it."""
        params = {"tenant": self.tenant_id, "user": user_id}
        rows = await driver_rows(self.session, _USER_COUNTS, params, small=True)
        if not rows:
            return None
        _, counts, revision, first_seen, level, updated = rows[0]
        return decode_counts(counts), revision or 0, first_seen, (level, updated) if level else None

    async def load_many(self, user_ids: Sequence[str]) -> dict[str, UserCounts]:
        """``load`` for many users at once (a batch's): one statement per ``_PROFILES_AT_ONCE`` users; the
        users the tenant does not have are left out."""
        out: dict[str, UserCounts] = {}
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), _PROFILES_AT_ONCE):
            params = {"tenant": self.tenant_id, "users": ids[start : start + _PROFILES_AT_ONCE]}
            for user_id, counts, revision, first_seen, level, updated in await self.session.execute(
                _MANY_USER_COUNTS, params
            ):
                risk = (level, updated) if level else None
                out[user_id] = (decode_counts(counts), revision or 0, first_seen, risk)
        return out

    async def history(self, user_id: str) -> tuple[int, datetime | None]:
        """(the user's learned sign-ins, when the user's history started): (0, None) without one."""
        stmt = self.select(UserFeatureCounts.counts, UserFeatureCounts.first_seen_at).where(
            UserFeatureCounts.user_id == user_id
        )
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return 0, None
        return features.TableCounts(decode_counts(row[0])).total("ip"), row[1]

    async def observe(
        self,
        user_id: str,
        observed: Sequence[tuple[str, str]],
        at: datetime,
        known: tuple[Mapping[str, Mapping[str, int]], int, datetime | None] | None,
    ) -> tuple[features.Table, int, datetime]:
        """Count one more observation of each (feature, value as stored "=<v>") in ``observed`` for the user
        (``features.observe``: the value, the feature's total and, for a value new to the user, its distinct
        count); the counts, revision and history start as written.

        ``known``: the counts, revision and history start this process holds for the user. Written where the
        row is still at that revision — one statement, nothing read — else (another transaction wrote the
        user since, or nothing is known) the row is read under a lock (``FOR UPDATE`` on PostgreSQL; on
        SQLite the transaction already holds the database's write lock once it has written) and written
        from what was read, so no increment is lost to a concurrent writer."""
        if known is not None:
            counts, revision, first_seen = known
            new = features.observe(counts, observed)
            if revision == 0:
                if await self._create(user_id, new, at):
                    return new, 1, at
            elif await self._replace(user_id, new, revision):
                return new, revision + 1, first_seen or at
        for _ in range(3):
            stmt = (
                self.select(
                    UserFeatureCounts.counts, UserFeatureCounts.revision, UserFeatureCounts.first_seen_at
                )
                .where(UserFeatureCounts.user_id == user_id)
                .with_for_update()
            )
            row = (await self.session.execute(stmt)).first()
            if row is None:
                new = features.observe({}, observed)
                if await self._create(user_id, new, at):
                    return new, 1, at
                continue  # created meanwhile by another transaction: read it
            new = features.observe(decode_counts(row[0]), observed)
            if await self._replace(user_id, new, row[1]):
                return new, row[1] + 1, row[2]
        raise RuntimeError(f"the counts of user {user_id} changed under three attempts to add to them")

    async def _create(self, user_id: str, counts: features.Table, at: datetime) -> bool:
        values = {
            "tenant_id": self.tenant_id,
            "user_id": user_id,
            "counts": encode_counts(counts),
            "revision": 1,
            "first_seen_at": at,
        }
        result = await self.session.execute(
            _insert(self.session, UserFeatureCounts).values(values).on_conflict_do_nothing()
        )
        return bool(getattr(result, "rowcount", 0))

    async def _replace(self, user_id: str, counts: features.Table, revision: int) -> bool:
        stmt = (
            update(UserFeatureCounts)
            .where(
                UserFeatureCounts.tenant_id == self.tenant_id,
                UserFeatureCounts.user_id == user_id,
                UserFeatureCounts.revision == revision,
            )
            .values(counts=encode_counts(counts), revision=revision + 1)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))
