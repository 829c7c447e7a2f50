"""Identity protection rules, once. ``assess`` scores one sign-in attempt with the detectors that need no
other sign-in, stores the sign-in and its detections, updates the user's risk, and queues the durable job
in which unlikely travel and password spray look at the other sign-ins (``detect_offline``, run by
``tasks.py``); the admin and partner actions (confirm compromised, confirm safe, dismiss, remediate,
threat-intelligence reports) move the user's riskState. Never commits; no HTTP types.

User risk (our rule; Microsoft documents no formula): the highest level among the user's *active*
detections (riskState atRisk or confirmedCompromised), where a low detection stops counting 180 days after
it was detected (low ages out) while medium and high count until they are remediated, dismissed or
confirmed safe. A confirmed compromise pins the user at high with riskState confirmedCompromised. A user
with an active detection is atRisk; when none is left the user keeps the state of the action that cleared
it (remediated, dismissed, confirmedSafe) at level none. Every change of level, state or detail is written
to the user's history.

Sign-in risk: ``riskLevelDuringSignIn`` is the highest level among the sign-in's real-time detections (what
conditional access sees during the sign-in); ``riskLevelAggregated`` includes its offline detections."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import to_utc, utcnow
from trustplane.core.errors import BadRequest
from trustplane.core.events import SYSTEM, Actor, EventSpec, emit, subscribe
from trustplane.core.ids import is_uuid, new_id
from trustplane.core.models import Job
from trustplane.directory.audit import ACTIVITIES, AUDIT_JOB
from trustplane.directory.models import User
from trustplane.directory.repository import UserRepository, upn_key
from trustplane.idp.revocation import USER_RISK_HIGH, revoke_user
from trustplane.protection import cache, features, ipintel, profiles
from trustplane.protection.detectors import DETECTORS
from trustplane.protection.detectors.base import (
    RANK,
    Finding,
    IpFacts,
    PreviousLocation,
    ReportSignal,
    SignInSignal,
    SprayStats,
    highest,
)
from trustplane.protection.detectors.credentials import SPRAY_WINDOW_MINUTES
from trustplane.protection.detectors.travel import learned as learned_for_travel
from trustplane.protection.models import RiskDetection, RiskyUser, RiskyUserHistory, SignIn
from trustplane.protection.repository import (
    FeatureCountRepository,
    LeakedCredentialRepository,
    RiskDetectionRepository,
    RiskyUserHistoryRepository,
    RiskyUserRepository,
    SignInRepository,
    ThreatIntelRepository,
    UserCounts,
    UserCountsRepository,
)

LOW_RISK_LIFETIME = timedelta(days=180)
log = structlog.get_logger("trustplane.protection")

ACTIVITIES.update(
    {
        "protection.risky_user.confirmed_compromised": ("Confirm user compromised", "IdentityProtection"),
        "protection.risky_user.confirmed_safe": ("Confirm user safe", "IdentityProtection"),
        "protection.risky_user.dismissed": ("Dismiss user risk", "IdentityProtection"),
        "protection.risky_user.remediated": ("Remediate user risk", "IdentityProtection"),
        "protection.threat_intelligence.reported": ("Report threat intelligence", "IdentityProtection"),
        "protection.threat_intel_addresses.added": (
            "Add threat intelligence addresses",
            "IdentityProtection",
        ),
        "protection.leaked_credentials.imported": ("Import leaked credentials", "IdentityProtection"),
    }
)
subscribe("protection.risky_user.", AUDIT_JOB)
subscribe("protection.threat_intel", AUDIT_JOB)
subscribe("protection.leaked_credentials.", AUDIT_JOB)


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """One sign-in attempt as the identity provider saw it. ``password`` (when the IdP passes it) is hashed
    for the leaked-credential lookup and never stored; ``password_valid`` says whether the first factor
    succeeded (None when unknown). Location and ASN, when the IdP knows them, take precedence over IP
    intelligence."""

    user_principal_name: str
    at: datetime
    ip_address: str | None = None
    user_id: str | None = None
    user_display_name: str | None = None
    user_agent: str | None = None
    app_id: str | None = None
    app_display_name: str | None = None
    client_app_used: str | None = "Browser"
    is_interactive: bool = True
    error_code: int = 0
    failure_reason: str | None = None
    password_valid: bool | None = None
    password: str | None = field(default=None, repr=False)
    device_detail: dict[str, Any] = field(default_factory=dict)
    country: str | None = None
    city: str | None = None
    state: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    asn: int | None = None
    correlation_id: str | None = None
    source: str = "trustplane"
    external_id: str | None = None
    # The directory user, when the caller has already read it in this transaction (TrustPlane's own sign-in
    # has, to check the password): ``decide`` then does not read it again. Must be the user ``user_id`` names.
    user: User | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.error_code == 0


@dataclass(slots=True)
class Assessment:
    sign_in: SignIn
    risk_level: str  # riskLevelDuringSignIn
    risk_level_aggregated: str
    risk_score: float
    detections: list[RiskDetection]
    user_risk: str
    # What ``learn`` needs when it is called in the same transaction (no second profile read); None when
    # the sign-in has no directory user or was already learned.
    features: dict[str, str] | None = field(default=None, repr=False)
    profile: Profile | None = field(default=None, repr=False)


# ---------------------------------------------------------------- tenant threat intelligence


async def add_threat_intel(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    kind: str,
    ranges: Sequence[str],
    description: str | None = None,
) -> int:
    """Add CIDR ranges to the tenant's list of ``kind`` "malicious" or "anonymizer" addresses."""
    if kind not in ("malicious", "anonymizer"):
        raise BadRequest("The kind of a threat-intelligence range is 'malicious' or 'anonymizer'.")
    parsed = []
    for raw in ranges:
        try:
            parsed.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError as exc:
            raise BadRequest(f"'{raw}' is not an IP address or CIDR range.") from exc
    await ThreatIntelRepository(session, tenant_id).add_many(kind, [(c, description) for c in parsed])
    cache.forget_lists(tenant_id)
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("protection.threat_intel_addresses.added", "threatIntel", kind, {"count": len(parsed)}),
    )
    return len(parsed)


def password_sha1(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


async def import_leaked_hashes(
    session: AsyncSession, tenant_id: str, actor: Actor, hashes: Sequence[str]
) -> int:
    """Import SHA-1 password hashes (HIBP style: 40 hex digits, optionally ``:count``); the number new."""
    clean = []
    for i, raw in enumerate(hashes, 1):
        value = raw.strip().split(":", 1)[0].upper()
        if not value:
            continue
        if len(value) != 40 or any(ch not in "0123456789ABCDEF" for ch in value):
            raise BadRequest(f"Line {i} is not a SHA-1 hash (40 hexadecimal digits).")
        clean.append(value)
    added = await LeakedCredentialRepository(session, tenant_id).add_many(sorted(set(clean)))
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("protection.leaked_credentials.imported", "leakedCredentials", tenant_id, {"added": added}),
    )
    return added


# ---------------------------------------------------------------- assess


async def _user(session: AsyncSession, tenant_id: str, attempt: SignInAttempt) -> User | None:
    users = UserRepository(session, tenant_id)
    if attempt.user_id is not None and is_uuid(attempt.user_id):
        return await users.get(attempt.user_id)
    return await users.by_upn(attempt.user_principal_name)


@dataclass(slots=True)
class Profile:
    """What a decision reads about the user and the tenant: the user's feature counts (the cached state's
    table, ``features.Table``), the tenant-wide ones (the tenant's snapshot, or the values read for this
    sign-in) plus this process's unwritten tenant-wide increments, when the user's history started and the
    user's stored risk. Values as stored: "=<value>" | "#total" | "#distinct".

    A view of the process's tables, not a copy (copying the ~85 counts a sign-in is scored against was most
    of a decision's cost): a transaction of this process that commits meanwhile adds to the tenant-wide ones,
    so a later step of the same sign-in (``learn``) sees what was committed in between — as a read would; the
    user's are replaced, not changed, by a commit (``learn`` writes from the user's latest counts itself)."""

    user_id: str
    mine: Mapping[str, Mapping[str, int]]  # {feature: {value as stored: count}}
    tenant: Mapping[tuple[str, str], int]
    pending: Mapping[tuple[str, str], int]
    first_seen: datetime | None
    risk_level: str
    risk_updated_at: datetime | None
    # the tenant-wide counts of this sign-in's values of the snapshot's column features (``profiles.Column``)
    resolved: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def user_count(self, feature: str, value: str) -> int:
        counts = self.mine.get(feature)
        return counts.get(value, 0) if counts is not None else 0

    def tenant_count(self, feature: str, value: str) -> int:
        key = (feature, value)
        return self.tenant.get(key, 0) + self.pending.get(key, 0) + self.resolved.get(key, 0)

    def user_counts(self) -> features.TableCounts:
        """The model's view of the user's counts."""
        return features.TableCounts(self.mine)

    def tenant_counts(self) -> features.Counts:
        """The model's view of the tenant's counts."""
        return features.Counts(self.tenant, self.pending, self.resolved, stored=True)


@dataclass(slots=True)
class _UserRead:
    """A first touch's read of the user's counts and risk, started before the decision's own computation
    (``_read_ahead``) so that the database answers while the process computes."""

    user: User
    since: int  # ``profiles.generation()`` when the read began
    task: asyncio.Task[UserCounts | None]


def _read_ahead(session: AsyncSession, tenant_id: str, attempt: SignInAttempt) -> _UserRead | None:
    """Start reading the user's counts now when the decision will need them from the database — the user is
    not cached — and the caller passed the user's row (``attempt.user``, as TrustPlane's sign-in does), so
    the read needs nothing else first. The session is the task's until it is awaited."""
    given = _given_user(attempt, tenant_id)
    if given is None or profiles.user(tenant_id, given.id, None) is not None:
        return None
    since = profiles.generation()
    task = asyncio.get_running_loop().create_task(UserCountsRepository(session, tenant_id).load(given.id))
    return _UserRead(given, since, task)


def _given_user(attempt: SignInAttempt, tenant_id: str) -> User | None:
    """The user's row the caller passed (``attempt.user``) when it is the attempt's user in this tenant."""
    given = attempt.user
    if given is not None and given.tenant_id == tenant_id and given.id == attempt.user_id:
        return given
    return None


async def _load_user(
    session: AsyncSession,
    tenant_id: str,
    attempt: SignInAttempt,
    values: dict[str, str],
    ahead: _UserRead | None = None,
) -> profiles.UserState | None:
    """The attempt's directory user with every feature count and the stored risk: from this process's
    cache (``profiles``) when it is fresh, else read (or taken from the read ``ahead``) and cached. The read
    is one statement — the user's counts and risk — after the user's own row, unless the caller passed that
    (``attempt.user``); without a snapshot of the tenant's table, the tenant-wide counts of this sign-in's
    ``values`` that the cache lacks are read too."""
    if ahead is not None:
        user, since = ahead.user, ahead.since
        loaded = await ahead.task
    else:
        user_id = attempt.user_id if attempt.user_id is not None and is_uuid(attempt.user_id) else None
        cached = profiles.user(tenant_id, user_id, None if user_id else attempt.user_principal_name)
        if cached is not None:
            return cached
        since = profiles.generation()
        found = _given_user(attempt, tenant_id) or await _user(session, tenant_id, attempt)
        if found is None:
            return None
        user = found
        loaded = await UserCountsRepository(session, tenant_id).load(user.id)
    if loaded is None:  # deleted since it was read
        return None
    if profiles.snapshot(tenant_id) is None:
        # Without a snapshot of the tenant's table, the tenant-wide counts this sign-in is scored against and
        # the cache lacks are read now too (all of ``wanted``: one statement shape per feature set).
        wanted = _wanted(values)
        _, missing = profiles.tenant_counts(tenant_id, wanted)
        if missing:
            tenant = await FeatureCountRepository(session, tenant_id).counts(wanted)
            profiles.store_tenant_counts(tenant_id, tenant, since)
    state = _user_state(user, loaded, time.monotonic())
    profiles.store_user(tenant_id, state, since)
    return state


def _user_state(user: User, loaded: UserCounts, loaded_at: float) -> profiles.UserState:
    """What ``profiles`` keeps of a user read from the database (no stored risk: "none")."""
    counts, revision, first_seen, risk = loaded
    level, updated = risk if risk is not None else ("none", None)
    return profiles.UserState(
        user.id,
        user.user_principal_name,
        user.display_name,
        counts,
        first_seen,
        level,
        updated,
        loaded_at,
        revision,
    )


async def prefetch(session: AsyncSession, tenant_id: str, attempts: Sequence[SignInAttempt]) -> int:
    """Load into this process's caches what the decisions of a batch of attempts read: the tenant's lists and
    snapshot when they are not held, and the users this process does not hold, in a few statements for the
    whole batch (their rows, then their counts and risk) instead of one first touch per user; the number of
    users loaded. Call it before the batch writes anything: a user whose risk the batch then changes is
    dropped from the cache and read again in the batch's transaction."""
    await cache.tenant_lists(session, tenant_id)
    await _tenant_snapshot(session, tenant_id)
    ids: set[str] = set()
    upns: set[str] = set()
    for attempt in attempts:
        if attempt.user_id is not None and is_uuid(attempt.user_id):
            if profiles.user(tenant_id, attempt.user_id, None) is None:
                ids.add(attempt.user_id)
        elif (
            attempt.user_principal_name
            and profiles.user(tenant_id, None, attempt.user_principal_name) is None
        ):
            upns.add(upn_key(attempt.user_principal_name))
    if not ids and not upns:
        return 0
    since = profiles.generation()
    users = UserRepository(session, tenant_id)
    found: list[User] = []
    for chunk in _chunks(sorted(ids)):
        found += (await session.execute(users.select().where(User.id.in_(chunk)))).scalars().all()
    for chunk in _chunks(sorted(upns)):
        stmt = users.select().where(func.lower(User.user_principal_name).in_(chunk))
        found += (await session.execute(stmt)).scalars().all()
    loaded = await UserCountsRepository(session, tenant_id).load_many([u.id for u in found])
    now = time.monotonic()
    for user in found:
        if user.id in loaded:
            profiles.store_user(tenant_id, _user_state(user, loaded[user.id], now), since)
    return len(found)


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _tenant_snapshot(session: AsyncSession, tenant_id: str) -> None:
    """Read the tenant's whole table of tenant-wide counts into this process (``profiles``) when it is due:
    the first time in this decision (it waits for it), later in the background while the stale snapshot
    serves (a 300,000-row table takes about a second to read and sort)."""
    if not profiles.snapshot_due(tenant_id):
        return
    profiles.begin_load(tenant_id)
    if profiles.snapshot(tenant_id) is None:
        await _load_snapshot(session, tenant_id)
        return
    bind = session.bind

    async def refresh() -> None:
        try:
            async with AsyncSession(bind, expire_on_commit=False) as own:
                await _load_snapshot(own, tenant_id)
        except Exception:
            log.warning("protection.snapshot_refresh_failed", tenant_id=tenant_id, exc_info=True)

    task = asyncio.get_running_loop().create_task(refresh())
    _refreshing.add(task)
    task.add_done_callback(_refreshing.discard)


_refreshing: set[asyncio.Task[None]] = set()


async def _load_snapshot(session: AsyncSession, tenant_id: str) -> None:
    """Read the tenant's table (``profiles.begin_load`` called) and keep it; the sort of a large table's
    columns runs in a thread, so other requests go on meanwhile."""
    started = time.monotonic()
    try:
        built = profiles.SnapshotBuilder()
        fits = await FeatureCountRepository(session, tenant_id).tenant_table(profiles.SNAPSHOT_MAX, built)
        snap = (
            (await asyncio.to_thread(built.build, started) if built.columns else built.build(started))
            if fits
            else None
        )
    except BaseException:
        profiles.abandon_load(tenant_id)
        raise
    profiles.store_snapshot(tenant_id, snap)


_SCORE_KEYS = [(features.USERS, features.TOTAL), (features.SCORE, features.TOTAL)] + [
    (features.SCORE, "=" + b) for b in features.BUCKETS
]


def _wanted(values: dict[str, str]) -> list[tuple[str, str]]:
    """The tenant-wide counts a sign-in with these feature values is scored against."""
    wanted = [(f, key) for f, v in values.items() for key in ("=" + v, features.TOTAL, features.DISTINCT)]
    return wanted + _SCORE_KEYS


async def _profile(
    session: AsyncSession, tenant_id: str, state: profiles.UserState, values: dict[str, str]
) -> Profile:
    """The profile for a sign-in with these ``values``: the user's counts from ``state``; the tenant's from
    the tenant's snapshot, else from the per-value cache (the ones not cached read in one statement); this
    process's unwritten tenant-wide increments beside them."""
    snap = profiles.snapshot(tenant_id)
    tenant: dict[tuple[str, str], int]
    resolved: dict[tuple[str, str], int] = {}
    if snap is not None:
        tenant, resolved = snap.counts, snap.resolve(values)
    else:
        wanted = _wanted(values)
        tenant, missing = profiles.tenant_counts(tenant_id, wanted)
        if missing:
            since = profiles.generation()
            tenant = await FeatureCountRepository(session, tenant_id).counts(wanted)
            profiles.store_tenant_counts(tenant_id, tenant, since)
    return Profile(
        state.user_id,
        state.counts,
        tenant,
        cache.pending(tenant_id),
        state.first_seen,
        state.risk_level,
        state.risk_updated_at,
        resolved,
    )


def _unfamiliar(profile: Profile, values: dict[str, str], at: datetime) -> tuple[float | None, float | None]:
    """The score (None in the learning period) and its share among the tenant's scored sign-ins."""
    first_seen = profile.first_seen
    if first_seen is None or profile.user_count("ip", features.TOTAL) < features.LEARNING_SIGN_INS:
        return None, None
    if at - to_utc(first_seen) < timedelta(days=features.LEARNING_DAYS):
        return None, None
    tenant = profile.tenant_counts()
    value = features.score(values, profile.user_counts(), tenant)
    return value, features.tail_share(value, tenant)


async def _learn(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    values: dict[str, str],
    profile: Profile,
    at: datetime,
    *,
    learn: bool,
    score: float | None,
) -> None:
    """Count the score in the tenant's histogram (every scored sign-in) and, for a successful sign-in that
    raised no risk, add its features to the user's counts (written now) and the tenant's (``cache``)."""
    tenant_rows: list[tuple[str, str, int]] = []
    if score is not None:
        tenant_rows += [
            (features.SCORE, "=" + features.score_bucket(score), 1),
            (features.SCORE, features.TOTAL, 1),
        ]
    if learn:
        observed = [(feature, "=" + value) for feature, value in features.learnable(values).items()]
        # From what this transaction wrote of the user, else what this process holds (its revision checked
        # by the write), else read under a lock.
        known: tuple[Mapping[str, Mapping[str, int]], int, datetime | None] | None
        known = profiles.written_counts(session, tenant_id, user_id)
        if known is None:
            state = profiles.user(tenant_id, user_id, None)
            known = None if state is None else (state.counts, state.revision, state.first_seen)
        written = await UserCountsRepository(session, tenant_id).observe(user_id, observed, at, known)
        profiles.user_counts_on_commit(session, tenant_id, user_id, written)
        for feature, value in observed:
            tenant_rows.append((feature, value, 1))
            tenant_rows.append((feature, features.TOTAL, 1))
            if profile.tenant_count(feature, value) == 0:
                tenant_rows.append((feature, features.DISTINCT, 1))
        if features.TableCounts(written[0]).total("ip") == 1:  # the user's first learned sign-in
            tenant_rows.append((features.USERS, features.TOTAL, 1))
    cache.add_tenant_counts(tenant_id, tenant_rows)
    due = cache.take_due(tenant_id)
    await FeatureCountRepository(session, tenant_id).increment([("*", f, v, n) for f, v, n in due], at)
    profiles.tenant_counts_on_commit(session, tenant_id, due)


def _stored_values(sign_in: SignIn) -> dict[str, str]:
    """The feature values of a stored sign-in, as ``assess`` computed them from its attempt (the stored
    country and ASN are the ones ``assess`` used)."""
    detail = sign_in.device_detail
    device_id = detail.get("deviceId") if isinstance(detail, dict) else None
    return features.feature_values(
        sign_in.ip_address,
        sign_in.asn,
        sign_in.country,
        sign_in.user_agent,
        device_id=str(device_id) if device_id else None,
        city=sign_in.city,
        region=sign_in.state,
        at=to_utc(sign_in.created_at),
    )


def learnable(sign_in: SignIn) -> bool:
    """Whether a sign-in may teach its user's profile: a directory user's, successful as it stands now
    (conditional access let it through: ``errorCode`` 0), and not risky (aggregated risk below medium)."""
    return (
        bool(sign_in.user_id)
        and sign_in.error_code == 0
        and RANK.get(sign_in.risk_level_aggregated or "none", 0) < RANK["medium"]
    )


async def learn(session: AsyncSession, tenant_id: str, target: Assessment | SignIn) -> bool:
    """Teach the user's profile a sign-in's features once its outcome is known: call it when the sign-in
    succeeded (TrustPlane's own sign-in when conditional access let it through; ingestion for an event
    whose ``errorCode`` is 0), never for a failed or blocked attempt, and once per sign-in (``assess`` with
    ``learn=True`` has already learned it). An ``Assessment`` of this transaction reuses the profile
    ``assess`` read; a stored ``SignIn`` (a later step of the same sign-in, e.g. after MFA) reads it again.
    Whether anything was learned."""
    sign_in = target.sign_in if isinstance(target, Assessment) else target
    if not learnable(sign_in) or sign_in.tenant_id not in (None, tenant_id):
        return False
    user_id = sign_in.user_id or ""
    values: dict[str, str] | None = None
    profile: Profile | None = None
    if isinstance(target, Assessment):
        values, profile = target.features, target.profile
        target.features = target.profile = None  # a second call learns nothing twice
        if values is None or profile is None:
            return False
    else:
        values = _stored_values(sign_in)
        attempt = SignInAttempt(sign_in.user_principal_name or "", sign_in.created_at, user_id=user_id)
        state = await _load_user(session, tenant_id, attempt, values)
        if state is None:
            return False
        profile = await _profile(session, tenant_id, state, values)
    at = to_utc(sign_in.created_at)
    await _learn(session, tenant_id, user_id, values, profile, at, learn=True, score=None)
    return True


def _risk_now(level: str, updated_at: datetime | None, now: datetime) -> str:
    """A stored user risk as conditional access sees it now (a low level ages out at read time too)."""
    if level == "low" and updated_at is not None and now - to_utc(updated_at) > LOW_RISK_LIFETIME:
        return "none"
    return level


@dataclass(slots=True)
class RiskDecision:
    """What ``decide`` found about one attempt, before anything is written (``record`` writes it)."""

    attempt: SignInAttempt
    at: datetime
    user: profiles.UserState | None
    facts: IpFacts
    anonymizer: str | None
    values: dict[str, str]
    profile: Profile | None
    score: float | None
    signal: SignInSignal
    findings: list[Finding]
    risk_level: str  # riskLevelDuringSignIn
    risk_level_aggregated: str


async def decide(
    session: AsyncSession, tenant_id: str, attempt: SignInAttempt, *, offline: str = "job"
) -> RiskDecision:
    """The risk of one attempt, from what this process holds (``profiles``, ``cache``, IP intelligence):
    no database round trip for a user seen in the last ``profiles.TTL`` seconds (the tenant-wide counts come
    from the tenant's snapshot), one statement for a user's first touch (the user's counts and risk; the
    user's row too unless the caller passed it in ``attempt.user``); a leaked-password check (when the IdP
    passes the password) and, with ``offline="inline"``, the offline detectors read the database. Writes
    nothing."""
    if offline not in ("job", "inline"):
        raise ValueError("offline is 'job' or 'inline'")
    at = to_utc(attempt.at)
    lists = await cache.tenant_lists(session, tenant_id)
    await _tenant_snapshot(session, tenant_id)
    ahead = _read_ahead(session, tenant_id, attempt)
    try:
        if ahead is not None:
            await asyncio.sleep(0)  # the read's statement goes out; what follows runs while it is answered
        intel = ipintel.current().lookup(attempt.ip_address)
        anonymizer = intel.anonymizer or ("admin" if lists.is_anonymizer(attempt.ip_address) else None)
        facts = IpFacts(
            country=(attempt.country or intel.country or None),
            asn=attempt.asn if attempt.asn is not None else intel.asn,
            is_private=intel.is_private,
            anonymizer=anonymizer,
            malicious=lists.is_malicious(attempt.ip_address),
        )
        device_id = attempt.device_detail.get("deviceId") if isinstance(attempt.device_detail, dict) else None
        values = features.feature_values(
            attempt.ip_address,
            facts.asn,
            facts.country,
            attempt.user_agent,
            device_id=str(device_id) if device_id else None,
            city=attempt.city,
            region=attempt.state,
            at=at,
        )
        user = await _load_user(session, tenant_id, attempt, values, ahead)
    finally:
        if ahead is not None and not ahead.task.done():
            # Failed before taking the read: it still holds the session, so it ends before anything else.
            await asyncio.wait([ahead.task])
            if not ahead.task.cancelled():
                ahead.task.exception()
    # Only a user of this tenant's directory gets detections and a risk; any other name is logged as given.
    user_id = user.user_id if user is not None else ""
    password_valid = (
        attempt.password_valid if attempt.password_valid is not None else (attempt.succeeded or None)
    )
    leaked = bool(attempt.password) and await LeakedCredentialRepository(session, tenant_id).contains(
        password_sha1(attempt.password or "")
    )
    score: float | None = None
    tail: float | None = None
    profile: Profile | None = None
    if user is not None:
        profile = await _profile(session, tenant_id, user, values)
        if attempt.succeeded:
            score, tail = _unfamiliar(profile, values, at)
    signal = SignInSignal(
        at=at,
        user_id=user_id,
        ip_address=attempt.ip_address,
        ip=facts,
        succeeded=attempt.succeeded,
        password_valid=password_valid,
        latitude=attempt.latitude,
        longitude=attempt.longitude,
        password_leaked=leaked,
        unfamiliar_score=score,
        unfamiliar_tail=tail,
    )
    if offline == "inline" and user_id:
        signal = await _offline_signal(session, tenant_id, signal, exclude_id=None)
    findings = [f for d in DETECTORS if (f := d.detect(signal)) is not None]
    during = highest([f.level for f in findings if f.timing == "realtime"])
    aggregated = highest([f.level for f in findings])
    return RiskDecision(
        attempt, at, user, facts, anonymizer, values, profile, score, signal, findings, during, aggregated
    )


async def assess(
    session: AsyncSession,
    tenant_id: str,
    attempt: SignInAttempt,
    *,
    learn: bool = True,
    offline: str = "job",
) -> Assessment:
    """Score one sign-in attempt (``decide``) and store it (``record``): run the real-time detectors (and
    the offline ones that need no query: the tenant's malicious-address list, a leaked password, which is
    never stored), store the sign-in and its detections, update the user's risk, and (``learn=True``, for a
    successful sign-in that raised no risk) learn its features. ``learn=True`` is for an attempt whose
    outcome is final when it is assessed (a script replaying history); a caller that decides afterwards
    (conditional access, ingestion) passes ``learn=False`` and calls ``learn`` once the sign-in succeeded,
    so that a blocked or failed attempt never makes its address, device or country familiar. The offline
    detectors that read other sign-ins (unlikely travel, password spray) run in a durable job queued in the
    same transaction (``offline="job"``, the default) or here (``offline="inline"``: one sign-in at a
    time)."""
    decision = await decide(session, tenant_id, attempt, offline=offline)
    return await record(session, tenant_id, decision, learn=learn, offline=offline)


async def record(
    session: AsyncSession, tenant_id: str, decision: RiskDecision, *, learn: bool = True, offline: str = "job"
) -> Assessment:
    """Write what ``decide`` found: the sign-in, its detections, the user's risk, the score in the tenant's
    histogram (and with ``learn=True`` the features), the offline-detection job and the sign-in event. All
    of it is durable when the session commits; the caller commits before it answers."""
    attempt, at, user, facts, findings = (
        decision.attempt,
        decision.at,
        decision.user,
        decision.facts,
        decision.findings,
    )
    user_id = user.user_id if user is not None else ""
    score, profile, values = decision.score, decision.profile, decision.values
    during, aggregated, signal = decision.risk_level, decision.risk_level_aggregated, decision.signal
    sign_in = SignIn(
        id=new_id(),
        source=attempt.source,
        external_id=attempt.external_id,
        created_at=at,
        user_id=user_id or None,
        user_principal_name=user.user_principal_name if user is not None else attempt.user_principal_name,
        user_display_name=(user.display_name if user is not None else attempt.user_display_name),
        app_id=attempt.app_id,
        app_display_name=attempt.app_display_name,
        client_app_used=attempt.client_app_used,
        is_interactive=attempt.is_interactive,
        correlation_id=attempt.correlation_id or new_id(),
        ip_address=attempt.ip_address,
        country=facts.country,
        city=attempt.city,
        state=attempt.state,
        latitude=attempt.latitude,
        longitude=attempt.longitude,
        asn=facts.asn,
        network_kind="private" if facts.is_private else decision.anonymizer,
        user_agent=attempt.user_agent,
        device_detail=dict(attempt.device_detail),
        error_code=attempt.error_code,
        failure_reason=attempt.failure_reason,
        password_valid=signal.password_valid,
        risk_score=score if score is not None else 0.0,
        risk_level_during_sign_in=during,
        risk_level_aggregated=aggregated,
        risk_state="atRisk" if aggregated != "none" and user_id else "none",
        risk_event_types=sorted({f.risk_event_type for f in findings}),
    )
    SignInRepository(session, tenant_id).add(sign_in)
    detections: list[RiskDetection] = []
    user_risk = "none"
    if user_id and profile is not None:
        detections = [
            _detection(f, user_id, sign_in.user_principal_name, sign_in.user_display_name, at, sign_in)
            for f in findings
        ]
        repo = RiskDetectionRepository(session, tenant_id)
        for d in detections:
            repo.add(d)
        if detections:
            await session.flush()
            risky = await _recompute(
                session,
                tenant_id,
                user_id,
                sign_in.user_principal_name,
                sign_in.user_display_name,
                SYSTEM,
                at,
                detections,
            )
            user_risk = risky.risk_level
        else:
            user_risk = _risk_now(profile.risk_level, profile.risk_updated_at, at)
        learning = learn and attempt.succeeded and RANK[aggregated] < RANK["medium"]
        await _learn(session, tenant_id, user_id, values, profile, at, learn=learning, score=score)
        if offline == "job" and _offline_applies(signal):
            session.add(Job(tenant_id=tenant_id, kind=OFFLINE_JOB, payload={"sign_in_id": sign_in.id}))
        await _ensure_upkeep(session, tenant_id)
    await emit(session, tenant_id, SYSTEM, _sign_in_event(SIGN_IN_RECORDED, sign_in))
    later = profile is not None and not learn  # ``learn`` may teach it once the outcome is known
    return Assessment(
        sign_in,
        during,
        aggregated,
        score if score is not None else 0.0,
        detections,
        user_risk,
        values if later else None,
        profile if later else None,
    )


# Sign-in events (the activity log and the alert policies read them): one when a sign-in is recorded, one
# more when offline detections later find risk in it.
SIGN_IN_RECORDED = "protection.sign_in.recorded"
SIGN_IN_OFFLINE_RISK = "protection.sign_in.offline_risk"


def _sign_in_event(event_type: str, sign_in: SignIn) -> EventSpec:
    return EventSpec(
        event_type,
        "signIn",
        sign_in.id,
        {
            "at": int(to_utc(sign_in.created_at).timestamp() * 1000),
            "userId": sign_in.user_id,
            "userPrincipalName": sign_in.user_principal_name,
            "appId": sign_in.app_id,
            "appDisplayName": sign_in.app_display_name,
            "ipAddress": sign_in.ip_address,
            "country": sign_in.country,
            "city": sign_in.city,
            "userAgent": sign_in.user_agent,
            "errorCode": sign_in.error_code,
            "source": sign_in.source,
            "riskLevelDuringSignIn": sign_in.risk_level_during_sign_in,
            "riskLevelAggregated": sign_in.risk_level_aggregated,
            "riskEventTypes": list(sign_in.risk_event_types or []),
        },
    )


# ---------------------------------------------------------------- offline detections (a durable job)

OFFLINE_JOB = "protection.offline_detections"
UPKEEP_JOB = "protection.upkeep"
UPKEEP_INTERVAL = timedelta(hours=6)


def _offline_applies(signal: SignInSignal) -> bool:
    """Whether unlikely travel or password spray could fire for this sign-in (else no job is queued)."""
    public = signal.ip_address is not None and not signal.ip.is_private
    travel = signal.succeeded and signal.latitude is not None and signal.ip.anonymizer is None
    spray = bool(signal.password_valid)
    return public and (travel or spray)


async def _offline_signal(
    session: AsyncSession, tenant_id: str, signal: SignInSignal, *, exclude_id: str | None
) -> SignInSignal:
    """The signal with what the offline detectors read from other sign-ins: the user's previous located
    sign-in and travel learning state, and the address's attempts in the spray window."""
    sign_ins = SignInRepository(session, tenant_id)
    previous = None
    travel_learned = True
    if signal.latitude is not None and signal.succeeded:
        prev = await sign_ins.previous_location(signal.user_id, signal.at, exclude_id=exclude_id)
        if prev is not None and prev.latitude is not None and prev.longitude is not None:
            previous = PreviousLocation(
                to_utc(prev.created_at), prev.latitude, prev.longitude, prev.ip_address
            )
            learned, started = await UserCountsRepository(session, tenant_id).history(signal.user_id)
            days = (signal.at - to_utc(started)).total_seconds() / 86400 if started is not None else 0.0
            travel_learned = learned_for_travel(learned, days)
    spray = None
    if signal.ip_address and signal.password_valid:
        window = signal.at - timedelta(minutes=SPRAY_WINDOW_MINUTES)
        accounts, attempts, failed = await sign_ins.spray_stats(
            signal.ip_address, window, until=signal.at, exclude_id=exclude_id
        )
        spray = SprayStats(accounts + 1, attempts + 1, failed)
    return replace(signal, previous=previous, spray=spray, travel_learned=travel_learned)


async def detect_offline(session: AsyncSession, tenant_id: str, sign_in_id: str) -> list[RiskDetection]:
    """Run the offline detectors that read other sign-ins for one stored sign-in; store what they find on
    the sign-in (aggregated risk, event types) and in the user's risk. Safe to run again: a detection
    already stored for the sign-in is not added twice."""
    sign_in = await SignInRepository(session, tenant_id).get(sign_in_id)
    if sign_in is None or not sign_in.user_id:
        return []
    at = to_utc(sign_in.created_at)
    kind = sign_in.network_kind
    signal = SignInSignal(
        at=at,
        user_id=sign_in.user_id,
        ip_address=sign_in.ip_address,
        ip=IpFacts(
            country=sign_in.country,
            asn=sign_in.asn,
            is_private=kind == "private",
            anonymizer=kind if kind not in (None, "private") else None,
        ),
        succeeded=sign_in.error_code == 0,
        password_valid=sign_in.password_valid,
        latitude=sign_in.latitude,
        longitude=sign_in.longitude,
    )
    signal = await _offline_signal(session, tenant_id, signal, exclude_id=sign_in.id)
    stored = set(sign_in.risk_event_types or [])
    findings = [
        f
        for d in DETECTORS
        if d.risk_event_type in OFFLINE_TYPES
        and (f := d.detect(signal)) is not None
        and f.risk_event_type not in stored
    ]
    if not findings:
        return []
    detections = [
        _detection(f, sign_in.user_id, sign_in.user_principal_name, sign_in.user_display_name, at, sign_in)
        for f in findings
    ]
    repo = RiskDetectionRepository(session, tenant_id)
    for d in detections:
        repo.add(d)
    sign_in.risk_level_aggregated = highest([sign_in.risk_level_aggregated, *(f.level for f in findings)])
    sign_in.risk_event_types = sorted(stored | {f.risk_event_type for f in findings})
    if sign_in.risk_state == "none":
        sign_in.risk_state = "atRisk"
    await session.flush()
    await _recompute(
        session,
        tenant_id,
        sign_in.user_id,
        sign_in.user_principal_name,
        sign_in.user_display_name,
        SYSTEM,
        utcnow(),
        detections,
    )
    await emit(session, tenant_id, SYSTEM, _sign_in_event(SIGN_IN_OFFLINE_RISK, sign_in))
    return detections


OFFLINE_TYPES = frozenset({"unlikelyTravel", "passwordSpray"})

_upkeep_checked: dict[str, float] = {}  # tenant -> when this process last checked (monotonic seconds)


async def _ensure_upkeep(session: AsyncSession, tenant_id: str) -> None:
    """Queue the tenant's upkeep (risk age-out) when it has not run for ``UPKEEP_INTERVAL``: checked at a
    sign-in once per interval per process, so a tenant in use ages out on schedule without a job waiting
    in the queue meanwhile."""
    now = time.monotonic()
    last = _upkeep_checked.get(tenant_id)
    if last is not None and now - last < UPKEEP_INTERVAL.total_seconds():
        return
    _upkeep_checked[tenant_id] = now
    await schedule_upkeep(session, tenant_id, utcnow())


async def schedule_upkeep(session: AsyncSession, tenant_id: str, now: datetime) -> bool:
    """Queue an upkeep job for the tenant unless one is queued or one finished within ``UPKEEP_INTERVAL``;
    whether one was queued."""
    recent = await session.execute(
        select(Job.id)
        .where(
            Job.tenant_id == tenant_id,
            Job.kind == UPKEEP_JOB,
            or_(Job.status.in_(("pending", "running")), Job.finished_at >= now - UPKEEP_INTERVAL),
        )
        .limit(1)
    )
    if recent.first() is not None:
        return False
    session.add(Job(tenant_id=tenant_id, kind=UPKEEP_JOB, run_after=now, payload={}))
    return True


def _detection(
    finding: Finding, user_id: str, upn: str | None, name: str | None, at: datetime, sign_in: SignIn | None
) -> RiskDetection:
    info = dict(finding.additional_info)
    if sign_in is not None and sign_in.user_agent:
        info.setdefault("userAgent", sign_in.user_agent)
    return RiskDetection(
        id=new_id(),
        user_id=user_id,
        user_principal_name=upn,
        user_display_name=name,
        sign_in_id=sign_in.id if sign_in is not None and finding.activity == "signin" else None,
        correlation_id=sign_in.correlation_id if sign_in is not None else None,
        risk_event_type=finding.risk_event_type,
        risk_level=finding.level,
        risk_state=finding.state,
        risk_detail=finding.detail,
        source=finding.source,
        detection_timing_type=finding.timing,
        activity=finding.activity,
        ip_address=sign_in.ip_address if sign_in is not None else None,
        country=sign_in.country if sign_in is not None else None,
        city=sign_in.city if sign_in is not None else None,
        activity_at=at,
        detected_at=at,
        last_updated_at=at,
        additional_info=info,
    )


async def record_decision(session: AsyncSession, tenant_id: str, sign_in: SignIn, decision: Any) -> None:
    """Write conditional access's decision (an ``access.evaluator.Decision``) onto the sign-in."""
    sign_in.conditional_access_status = decision.status
    sign_in.applied_policies = decision.applied_policies()


# ---------------------------------------------------------------- user risk


def _aggregate(active: Sequence[RiskDetection], now: datetime) -> tuple[str, bool]:
    """(level, confirmed compromised) from the user's active detections, low ones ageing out."""
    levels = []
    confirmed = False
    for d in active:
        if d.risk_state == "confirmedCompromised":
            confirmed = True
        if d.risk_level == "low" and now - to_utc(d.detected_at) > LOW_RISK_LIFETIME:
            continue
        levels.append(d.risk_level)
    return ("high" if confirmed else highest(levels)), confirmed


async def _recompute(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    upn: str | None,
    name: str | None,
    actor: Actor,
    now: datetime,
    triggering: Sequence[RiskDetection] = (),
    cleared_state: str | None = None,
    cleared_detail: str | None = None,
) -> RiskyUser:
    """Set the user's risk from the active detections; write a history item when anything changed."""
    active = await RiskDetectionRepository(session, tenant_id).active_for(user_id)
    level, confirmed = _aggregate(active, now)
    users = RiskyUserRepository(session, tenant_id)
    risky = await users.get(user_id)
    if risky is None:
        risky = users.add(
            RiskyUser(
                id=user_id, risk_level="none", risk_state="none", risk_detail="none", risk_last_updated_at=now
            )
        )
    before = (risky.risk_level, risky.risk_state, risky.risk_detail)
    if confirmed:
        state, detail = "confirmedCompromised", "adminConfirmedUserCompromised"
    elif level != "none":
        state, detail = "atRisk", "none"
    elif cleared_state is not None:
        state, detail = cleared_state, cleared_detail or "none"
    else:
        state, detail = (
            (risky.risk_state, risky.risk_detail)
            if risky.risk_state not in ("atRisk", "confirmedCompromised")
            else ("none", "none")
        )
    risky.risk_level, risky.risk_state, risky.risk_detail = level, state, detail
    risky.user_principal_name = upn or risky.user_principal_name
    risky.user_display_name = name or risky.user_display_name
    if (level, state, detail) != before:
        profiles.forget_on_commit(session, tenant_id, user_id)  # the cached risk is not the user's any more
        risky.risk_last_updated_at = now
        RiskyUserHistoryRepository(session, tenant_id).add(
            RiskyUserHistory(
                id=new_id(),
                user_id=user_id,
                user_principal_name=risky.user_principal_name,
                user_display_name=risky.user_display_name,
                risk_level=level,
                risk_state=state,
                risk_detail=detail,
                risk_last_updated_at=now,
                activity_detail=detail,
                risk_event_types=sorted({d.risk_event_type for d in triggering}),
                initiated_by=actor.id if actor.type != "system" else None,
            )
        )
        await emit(
            session,
            tenant_id,
            actor,
            EventSpec(
                "protection.user_risk.changed",
                "riskyUser",
                user_id,
                {"riskLevel": level, "riskState": state, "riskDetail": detail},
            ),
        )
        if level == "high":  # continuous access evaluation: the user's sessions and tokens end now
            await revoke_user(session, tenant_id, user_id, USER_RISK_HIGH)
    return risky


async def current_user_risk(
    session: AsyncSession, tenant_id: str, user_id: str, now: datetime | None = None
) -> str:
    """The user's risk level now, as conditional access sees it (a low level ages out at read time too)."""
    risky = await RiskyUserRepository(session, tenant_id).get(user_id) if is_uuid(user_id) else None
    if risky is None:
        return "none"
    return _risk_now(risky.risk_level, risky.risk_last_updated_at, now or utcnow())


async def age_out(session: AsyncSession, tenant_id: str, now: datetime | None = None) -> int:
    """Recompute users whose low risk is older than its lifetime; the number changed."""
    now = now or utcnow()
    stale = await RiskyUserRepository(session, tenant_id).stale_low(now - LOW_RISK_LIFETIME)
    for risky in stale:
        await _recompute(session, tenant_id, risky.id, None, None, SYSTEM, now)
    return len(stale)


async def _users_for_action(session: AsyncSession, tenant_id: str, user_ids: Sequence[str]) -> list[User]:
    """The directory users named by an action, all of them or a clear error (nothing is written)."""
    if not isinstance(user_ids, list) or not user_ids or not all(isinstance(u, str) for u in user_ids):
        raise BadRequest("'userIds' must be a non-empty collection of user ids.", code="Request_BadRequest")
    if len(user_ids) > 60:
        raise BadRequest("At most 60 user ids can be given in one request.", code="Request_BadRequest")
    users = UserRepository(session, tenant_id)
    found: list[User] = []
    for user_id in dict.fromkeys(user_ids):
        user = await users.get(user_id) if is_uuid(user_id) else None
        if user is None:
            raise BadRequest(f"The user '{user_id}' was not found.", code="Request_BadRequest")
        found.append(user)
    return found


async def _report(
    session: AsyncSession, tenant_id: str, actor: Actor, user: User, signal: ReportSignal, now: datetime
) -> RiskDetection | None:
    findings = [f for d in DETECTORS if (f := d.detect(signal)) is not None]
    if not findings:
        return None
    detection = _detection(findings[0], user.id, user.user_principal_name, user.display_name, now, None)
    RiskDetectionRepository(session, tenant_id).add(detection)
    await session.flush()
    await _recompute(
        session, tenant_id, user.id, user.user_principal_name, user.display_name, actor, now, [detection]
    )
    return detection


async def confirm_compromised(
    session: AsyncSession, tenant_id: str, actor: Actor, user_ids: Sequence[str]
) -> None:
    """Each user: a new adminConfirmedUserCompromised detection, risk high, riskState confirmedCompromised."""
    now = utcnow()
    for user in await _users_for_action(session, tenant_id, user_ids):
        signal = ReportSignal(now, user.id, "adminConfirmedCompromised", reporter=actor.name or actor.id)
        await _report(session, tenant_id, actor, user, signal, now)
        await emit(
            session,
            tenant_id,
            actor,
            EventSpec(
                "protection.risky_user.confirmed_compromised",
                "riskyUser",
                user.id,
                {"userPrincipalName": user.user_principal_name},
            ),
        )


async def report_threat_intelligence(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    user_id: str,
    *,
    level: str = "high",
    reason: str | None = None,
) -> RiskDetection:
    """A partner's threat-intelligence finding about a user (investigationsThreatIntelligence)."""
    if level not in ("low", "medium", "high"):
        raise BadRequest("The level of a threat-intelligence report is low, medium or high.")
    (user,) = await _users_for_action(session, tenant_id, [user_id])
    now = utcnow()
    signal = ReportSignal(
        now, user.id, "threatIntelligence", level=level, reason=reason, reporter=actor.name or actor.id
    )
    detection = await _report(session, tenant_id, actor, user, signal, now)
    assert detection is not None
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec(
            "protection.threat_intelligence.reported",
            "riskyUser",
            user.id,
            {"level": level, "reason": reason},
        ),
    )
    return detection


async def _clear(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    user_ids: Sequence[str],
    state: str,
    detail: str,
    event: str,
) -> None:
    now = utcnow()
    for user in await _users_for_action(session, tenant_id, user_ids):
        await session.execute(
            update(RiskDetection)
            .where(
                RiskDetection.tenant_id == tenant_id,
                RiskDetection.user_id == user.id,
                RiskDetection.risk_state.in_(("atRisk", "confirmedCompromised")),
            )
            .values(risk_state=state, risk_detail=detail, last_updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
        await session.execute(
            update(SignIn)
            .where(SignIn.tenant_id == tenant_id, SignIn.user_id == user.id, SignIn.risk_state == "atRisk")
            .values(risk_state=state, risk_detail=detail)
            .execution_options(synchronize_session="fetch")
        )
        await _recompute(
            session,
            tenant_id,
            user.id,
            user.user_principal_name,
            user.display_name,
            actor,
            now,
            cleared_state=state,
            cleared_detail=detail,
        )
        await emit(
            session,
            tenant_id,
            actor,
            EventSpec(event, "riskyUser", user.id, {"userPrincipalName": user.user_principal_name}),
        )


async def dismiss(session: AsyncSession, tenant_id: str, actor: Actor, user_ids: Sequence[str]) -> None:
    """All the users' risk detections and risky sign-ins dismissed; risk none, riskState dismissed."""
    await _clear(
        session,
        tenant_id,
        actor,
        user_ids,
        "dismissed",
        "adminDismissedAllRiskForUser",
        "protection.risky_user.dismissed",
    )


async def confirm_safe(session: AsyncSession, tenant_id: str, actor: Actor, user_ids: Sequence[str]) -> None:
    """The users confirmed safe: risk none, riskState confirmedSafe, detail adminConfirmedAccountSafe."""
    await _clear(
        session,
        tenant_id,
        actor,
        user_ids,
        "confirmedSafe",
        "adminConfirmedAccountSafe",
        "protection.risky_user.confirmed_safe",
    )


async def remediate(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    user_id: str,
    detail: str = "userPerformedSecuredPasswordReset",
) -> None:
    """The user remediated their risk (a secure password reset or change, MFA driven by a risk policy)."""
    await _clear(
        session, tenant_id, actor, [user_id], "remediated", detail, "protection.risky_user.remediated"
    )
