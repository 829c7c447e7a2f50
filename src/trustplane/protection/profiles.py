"""A per-process cache of what ``assess`` reads about a user, so that deciding on a user seen in the last
``TTL`` seconds needs no database round trip.

* Users: (tenant, user id) -> the user's name, *all* the user's feature counts (a value not among them has
  count 0), when the user's history started and the user's stored risk. Loaded in one read on first touch
  (a user with more than ``MAX_ROWS`` counts is not cached: read per sign-in as before), least recently used
  dropped beyond ``MAX_USERS``.
* Tenant-wide counts: a tenant's whole table of them (every value any of its users was seen with; a value
  not in it has count 0) when it has at most ``SNAPSHOT_MAX`` rows, read at the tenant's first decision in
  this process and again in the background when older than ``SNAPSHOT_TTL`` (the old one serving
  meanwhile), so that a decision reads no tenant-wide count from the database. A feature with more than
  ``BIG_FEATURE`` values in the tenant (addresses and device ids: 272,000 and 43,000 of a simulated
  10,000-user tenant's 312,000 rows) is held as two sorted arrays of the values' hashes and counts
  (``Column``: 16 bytes a value, where a dictionary entry keyed by (feature, value) takes ~200); snapshots
  beyond ``MAX_VALUES`` in all (a column's value weighing a tenth of an entry) are dropped, least recently
  loaded first.
  A tenant with more rows: (tenant, feature, value) -> count as last read, least recently used dropped beyond
  ``MAX_VALUES``; a value not cached is read (the sign-in's values, in one statement).

Kept in step with what this process writes, after the commit (never before: a rolled-back sign-in teaches
nothing): a user's counts as ``learn`` wrote them (with their revision) replace the cached ones, and the
tenant-wide increments ``cache.take_due`` wrote are added to the cached ones; a change of the user's risk in
this process (``_recompute``) drops the user at once and again after the commit. What another process writes:
on PostgreSQL a change of a user's risk by any process is notified (migration 0011, on the row cache's
channel) and drops the user here at once, so a partner's confirmCompromised handled by another server reaches
this process's next decision; while the listener is not connected nothing is trusted past a reconnect (it
drops every user), and counts learned by other processes are seen when the entry is older than ``TTL`` and
read again."""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from trustplane.core.cache import EVERYTHING, follow_changes

TTL = 30.0
MAX_USERS = 20_000
MAX_ROWS = 5_000
MAX_VALUES = 400_000
SNAPSHOT_TTL = 300.0
SNAPSHOT_STALE = 4 * SNAPSHOT_TTL
SNAPSHOT_MAX = 2_000_000
BIG_FEATURE = 4_096

_UPDATES = "trustplane.protection.profile_updates"
_WRITTEN = "trustplane.protection.user_counts_written"


@dataclass(slots=True)
class UserState:
    user_id: str
    user_principal_name: str
    display_name: str | None
    counts: dict[str, dict[str, int]]  # {feature: {value as stored ("=<v>", "#total", "#distinct"): count}}
    first_seen: datetime | None
    risk_level: str
    risk_updated_at: datetime | None
    loaded_at: float
    revision: int = 0  # of the user's ``protection_user_counts`` row the counts are (0: none yet)


_users: OrderedDict[tuple[str, str], UserState] = OrderedDict()
_by_upn: dict[tuple[str, str], str] = {}  # (tenant, lower-case UPN) -> user id, for the users cached
_tenant_of: dict[str, str] = {}  # user id -> tenant, for the users cached (a notice names the user only)
_values: OrderedDict[tuple[str, str, str], tuple[int, float]] = OrderedDict()
_generation = 0  # bumped by every drop: a load that began before a drop is not stored


class Column:
    """One feature's values in a tenant, as two arrays sorted together: each stored value's hash ("=<value>";
    Python's string hash, fixed within a process, which is the only place the arrays live) and its count.
    A lookup is a bisection. Two values of a feature sharing a 64-bit hash would read one count: for
    300,000 values the odds that any pair does are ~2e-9."""

    __slots__ = ("counts", "hashes")

    def __init__(self, pairs: list[tuple[int, int]]) -> None:
        pairs.sort()
        self.hashes = array("q", [h for h, _ in pairs])
        self.counts = array("q", [n for _, n in pairs])

    def __len__(self) -> int:
        return len(self.hashes)

    def get(self, value: str) -> int:
        h = hash(value)
        i = bisect_left(self.hashes, h)
        return self.counts[i] if i < len(self.hashes) and self.hashes[i] == h else 0


@dataclass(slots=True)
class Snapshot:
    # (feature, value as stored) -> count: every row of the tenant's but the values of the ``columns``'
    # features, and whatever this process added since it was read (to any key)
    counts: dict[tuple[str, str], int]
    columns: dict[str, Column]  # feature -> its values as read, for the features with many
    loaded_at: float

    @property
    def weight(self) -> int:
        return len(self.counts) + sum(len(c) for c in self.columns.values()) // 10

    def get(self, key: tuple[str, str]) -> int:
        n = self.counts.get(key, 0)
        column = self.columns.get(key[0])
        return n + column.get(key[1]) if column is not None else n

    def resolve(self, values: Mapping[str, str]) -> dict[tuple[str, str], int]:
        """The read counts of a sign-in's values (``features.feature_values``) of the column features;
        ``counts`` holds the rest."""
        out: dict[tuple[str, str], int] = {}
        for feature, column in self.columns.items():
            value = values.get(feature)
            if value is not None:
                stored = "=" + value
                if n := column.get(stored):
                    out[(feature, stored)] = n
        return out


class SnapshotBuilder:
    """Builds a ``Snapshot`` from the tenant's rows in (feature, value) order, chunk by chunk: a feature's
    values stay in the dictionary until it has more than ``BIG_FEATURE`` of them, then go to a column."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.columns: dict[str, list[tuple[int, int]]] = {}
        self._values: dict[str, list[tuple[str, int]]] = {}  # feature -> its values so far, while few

    def add(self, rows: Iterable[tuple[str, str, int]]) -> None:
        for feature, value, count in rows:
            if not value.startswith("="):
                self.counts[(feature, value)] = count
                continue
            column = self.columns.get(feature)
            if column is not None:
                column.append((hash(value), count))
                continue
            few = self._values.setdefault(feature, [])
            few.append((value, count))
            if len(few) > BIG_FEATURE:
                self.columns[feature] = [(hash(v), n) for v, n in few]
                del self._values[feature]

    def build(self, loaded_at: float) -> Snapshot:
        for feature, few in self._values.items():
            self.counts.update(((feature, v), n) for v, n in few)
        return Snapshot(self.counts, {f: Column(pairs) for f, pairs in self.columns.items()}, loaded_at)


_snapshots: OrderedDict[str, Snapshot] = OrderedDict()
_too_big: dict[str, float] = {}  # tenant -> when its table was found over SNAPSHOT_MAX (tried again later)
# tenant -> the tenant-wide increments this process committed while the tenant's table was being read: added
# to the snapshot read (a row read after its increment committed then counts it twice; a read takes about a
# second for 300,000 rows, and these counts only say how common a value is)
_loads: dict[str, list[tuple[str, str, int]]] = {}


def generation() -> int:
    return _generation


def user(tenant_id: str, user_id: str | None, upn: str | None) -> UserState | None:
    """The cached user, fresh (younger than ``TTL``), by id or else by userPrincipalName."""
    if not user_id and upn:
        user_id = _by_upn.get((tenant_id, upn.lower()))
    if not user_id:
        return None
    key = (tenant_id, user_id)
    state = _users.get(key)
    if state is None:
        return None
    if time.monotonic() - state.loaded_at >= TTL:
        _drop(key)
        return None
    _users.move_to_end(key)
    return state


def store_user(tenant_id: str, state: UserState, since: int) -> None:
    """Cache a user loaded when ``generation()`` was ``since`` (not if anything was dropped meanwhile)."""
    if since != _generation or sum(map(len, state.counts.values())) > MAX_ROWS:
        return
    key = (tenant_id, state.user_id)
    _users[key] = state
    _users.move_to_end(key)
    _by_upn[(tenant_id, state.user_principal_name.lower())] = state.user_id
    _tenant_of[state.user_id] = tenant_id
    while len(_users) > MAX_USERS:
        _drop(next(iter(_users)))


def forget_user(tenant_id: str, user_id: str) -> None:
    global _generation
    _generation += 1
    _drop((tenant_id, user_id))


def _drop(key: tuple[str, str]) -> None:
    state = _users.pop(key, None)
    if state is not None:
        _by_upn.pop((key[0], state.user_principal_name.lower()), None)
        _tenant_of.pop(key[1], None)


def _risk_changed(user_id: str) -> None:
    """A ``risky_users`` row was written by some process (or the listener reconnected: ``*``): the cached
    user's risk may be stale, so the user is read again at the next decision."""
    global _generation
    _generation += 1
    if user_id == EVERYTHING:
        _users.clear()
        _by_upn.clear()
        _tenant_of.clear()
        return
    tenant_id = _tenant_of.get(user_id)
    if tenant_id is not None:
        _drop((tenant_id, user_id))


follow_changes("risky_users", _risk_changed)


def snapshot(tenant_id: str) -> Snapshot | None:
    """The tenant's whole table of tenant-wide counts, when this process holds one: older than
    ``SNAPSHOT_TTL`` it is read again in the background (``snapshot_due``) and serves meanwhile, up to
    ``SNAPSHOT_STALE`` (reads that keep failing)."""
    snap = _snapshots.get(tenant_id)
    if snap is None or time.monotonic() - snap.loaded_at >= SNAPSHOT_STALE:
        return None
    return snap


def snapshot_due(tenant_id: str) -> bool:
    """Whether to read the tenant's whole table now: none is held or it is older than ``SNAPSHOT_TTL``, no
    read of it is under way, and it was not found too large within the last ``SNAPSHOT_TTL`` seconds."""
    if tenant_id in _loads:
        return False
    now = time.monotonic()
    found_big = _too_big.get(tenant_id)
    if found_big is not None and now - found_big < SNAPSHOT_TTL:
        return False
    snap = _snapshots.get(tenant_id)
    return snap is None or now - snap.loaded_at >= SNAPSHOT_TTL


def begin_load(tenant_id: str) -> None:
    """A read of the tenant's table starts: no other starts until ``store_snapshot`` or ``abandon_load``."""
    _loads[tenant_id] = []


def abandon_load(tenant_id: str) -> None:
    _loads.pop(tenant_id, None)


def store_snapshot(tenant_id: str, snap: Snapshot | None) -> None:
    """Keep the tenant's table as read (``None``: it was over ``SNAPSHOT_MAX`` rows), with the tenant-wide
    increments this process committed while it was read."""
    during = _loads.pop(tenant_id, [])
    if snap is None:
        _too_big[tenant_id] = time.monotonic()
        _snapshots.pop(tenant_id, None)
        return
    _too_big.pop(tenant_id, None)
    counts = snap.counts
    for feature, value, n in during:
        counts[(feature, value)] = counts.get((feature, value), 0) + n
    _snapshots[tenant_id] = snap
    _snapshots.move_to_end(tenant_id)
    while len(_snapshots) > 1 and sum(s.weight for s in _snapshots.values()) > MAX_VALUES:
        _snapshots.popitem(last=False)


def tenant_counts(
    tenant_id: str, keys: list[tuple[str, str]]
) -> tuple[dict[tuple[str, str], int], list[tuple[str, str]]]:
    """The tenant-wide counts among ``keys`` this process holds (from the tenant's snapshot: all of them)
    and the keys to read."""
    snap = snapshot(tenant_id)
    if snap is not None:
        return {key: snap.get(key) for key in keys}, []
    now = time.monotonic()
    found: dict[tuple[str, str], int] = {}
    missing: list[tuple[str, str]] = []
    for feature, value in keys:
        key = (tenant_id, feature, value)
        cached = _values.get(key)
        if cached is None or now - cached[1] >= TTL:
            missing.append((feature, value))
        else:
            found[(feature, value)] = cached[0]
    return found, missing


def store_tenant_counts(tenant_id: str, counts: dict[tuple[str, str], int], since: int) -> None:
    if since != _generation:
        return
    now = time.monotonic()
    for (feature, value), n in counts.items():
        key = (tenant_id, feature, value)
        _values[key] = (n, now)
        _values.move_to_end(key)
    while len(_values) > MAX_VALUES:
        _values.popitem(last=False)


# ---------------------------------------------------------------- after commit


def tenant_counts_on_commit(session: Any, tenant_id: str, rows: list[tuple[str, str, int]]) -> None:
    """Add the tenant-wide (feature, value, n) increments ``FeatureCountRepository.increment`` wrote to the
    cached counts once the session's transaction commits (nothing if it rolls back)."""
    if rows:
        _pending(session).append((tenant_id, "counts", rows))


def user_counts_on_commit(
    session: Any, tenant_id: str, user_id: str, written: tuple[dict[str, dict[str, int]], int, datetime]
) -> None:
    """The user's counts, revision and history start as the session's transaction wrote them
    (``UserCountsRepository.observe``): the next write of the user in the same transaction starts from them
    (``written_counts``), and the cached user takes them once the transaction commits (unless it holds a
    later revision by then)."""
    info = getattr(session, "sync_session", session).info
    info.setdefault(_WRITTEN, {})[(tenant_id, user_id)] = written


def written_counts(
    session: Any, tenant_id: str, user_id: str
) -> tuple[dict[str, dict[str, int]], int, datetime] | None:
    """What the session's transaction wrote of the user's counts, if it did (``user_counts_on_commit``)."""
    written: dict[Any, Any] | None = getattr(session, "sync_session", session).info.get(_WRITTEN)
    return None if written is None else written.get((tenant_id, user_id))


def forget_on_commit(session: Any, tenant_id: str, user_id: str) -> None:
    """Drop the user now and again once the session's transaction commits (its risk changed)."""
    forget_user(tenant_id, user_id)
    _pending(session).append((tenant_id, "forget", user_id))


def _pending(session: Any) -> list[tuple[str, str, Any]]:
    info = getattr(session, "sync_session", session).info
    updates: list[tuple[str, str, Any]] = info.setdefault(_UPDATES, [])
    return updates


@event.listens_for(Session, "after_commit")
def _apply(session: Session) -> None:
    written = session.info.pop(_WRITTEN, None) or {}
    updates = session.info.pop(_UPDATES, None) or []
    for tenant_id, kind, payload in updates:
        if kind == "forget":
            forget_user(tenant_id, payload)
            continue
        for feature, value, n in payload:
            during = _loads.get(tenant_id)
            if during is not None:
                during.append((feature, value, n))
            snap = _snapshots.get(tenant_id)
            if snap is not None:
                snap.counts[(feature, value)] = snap.counts.get((feature, value), 0) + n
            key = (tenant_id, feature, value)
            cached = _values.get(key)
            if cached is not None:
                _values[key] = (cached[0] + n, cached[1])
    # Each user's counts as the transaction last wrote them (a user it dropped above is not cached).
    for key, (counts, revision, first_seen) in written.items():
        state = _users.get(key)
        if state is not None and state.revision < revision:
            # a new dict: a decision in progress keeps the counts it was reading
            state.counts, state.revision, state.first_seen = counts, revision, first_seen


@event.listens_for(Session, "after_soft_rollback")
def _discard(session: Session, _previous: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_UPDATES, None)
        session.info.pop(_WRITTEN, None)


def clear() -> None:
    """Forget everything (tests)."""
    global _generation
    _generation += 1
    _users.clear()
    _by_upn.clear()
    _tenant_of.clear()
    _values.clear()
    _snapshots.clear()
    _too_big.clear()
    _loads.clear()
