"""A per-process cache of hot rows (users by id and by userPrincipalName) for read-only requests, correct
under writes made by this process or any other:

- Read-your-writes in this process: a committed session invalidates every cached row it flushed (Session
  events), before its commit returns to the caller; a bulk UPDATE/DELETE on a cached table empties it.
- Other processes (PostgreSQL): a trigger on each cached table sends ``NOTIFY`` in the writing transaction
  (migration 0003), and every process ``LISTEN``s on a connection of its own. The cache is bypassed until
  the listener is connected and emptied whenever it (re)connects, so no change can slip by unseen; a dead
  connection is found by a periodic ping.
- Races: every invalidation bumps a generation, and a row read before the bump is dropped instead of stored.

SQLite has no way to tell other processes (``trustplane demo`` beside ``serve``) of a change, so the cache is
only turned on for PostgreSQL (``Database.start``). Rows are SQLAlchemy ``Row`` tuples: immutable, safe to
share between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from trustplane.core.observability import REGISTRY

log = structlog.get_logger("trustplane.cache")

LOOKUPS = Counter(
    "trustplane_row_cache_lookups_total",
    "Row cache lookups of read-only requests",
    ["table", "result"],
    registry=REGISTRY,
)
LISTENING = Gauge(
    "trustplane_row_cache_listening",
    "1 while the row cache's change listener is connected (the cache answers only then)",
    registry=REGISTRY,
)

# The NOTIFY channel; payloads are "<table>:<id>" or "<table>:*" (the whole table).
CHANNEL = "trustplane_row_changes"
EVERYTHING = "*"
LISTENER_NAME = "trustplane row cache"  # the listener connection's application_name
# session.info keys: the caches a read-only session may answer from; the rows a session has flushed.
ROW_CACHES = "trustplane.row_caches"
_TOUCHED = "trustplane.cache_touched"

# Cached tables and the secondary key of each (a function of the row), fixed at import time so that every
# write is tracked from the start.
_KEYS: dict[str, Callable[[Any], str]] = {}


# Other per-process state kept from a table (e.g. identity protection's profile cache) follows the same
# notifications: table -> callbacks given the changed id, or EVERYTHING when the listener (re)connects or is
# lost — changes may have been missed then.
_FOLLOWERS: dict[str, list[Callable[[str], None]]] = {}


def follow_changes(table: str, callback: Callable[[str], None]) -> None:
    """Call ``callback(id)`` for every committed change of a ``table`` row notified by any process (the table
    needs the notify trigger, see migrations 0004 and 0011), and ``callback(EVERYTHING)`` whenever the
    listener connects or is lost."""
    _FOLLOWERS.setdefault(table, []).append(callback)


def _tell_followers(table: str, object_id: str) -> None:
    tables = _FOLLOWERS if table == EVERYTHING else {table: _FOLLOWERS.get(table, [])}
    for callbacks in tables.values():
        for callback in callbacks:
            try:
                callback(object_id)
            except Exception as exc:  # a follower's failure must not stop the listener
                log.warning("row_change_follower_failed", table=table, error=repr(exc))


def cached_table(table: str, key: Callable[[Any], str]) -> str:
    """Declare ``table`` cacheable, with a secondary lookup key (e.g. the lowercased userPrincipalName)."""
    _KEYS[table] = key
    return table


class RowCache:
    """Rows of one table by id and by secondary key, within a tenant. Bounded: the oldest entry goes first."""

    def __init__(self, table: str, max_entries: int) -> None:
        self.table = table
        self.max_entries = max_entries
        self._key_of = _KEYS[table]
        self._rows: dict[str, Any] = {}
        self._ids: dict[tuple[str, str], str] = {}  # (tenant id, secondary key) -> row id
        self.generation = 0
        self.enabled = False
        self._hit = LOOKUPS.labels(table, "hit")
        self._miss = LOOKUPS.labels(table, "miss")

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, tenant_id: str, object_id: str) -> Any | None:
        row = self._rows.get(object_id) if self.enabled else None
        if row is None or row.tenant_id != tenant_id:
            self._miss.inc()
            return None
        self._hit.inc()
        return row

    def get_by_key(self, tenant_id: str, key: str) -> Any | None:
        object_id = self._ids.get((tenant_id, key)) if self.enabled else None
        row = self._rows.get(object_id) if object_id is not None else None
        if row is None or row.tenant_id != tenant_id or self._key_of(row) != key:
            self._miss.inc()
            return None
        self._hit.inc()
        return row

    def read_token(self) -> int | None:
        """Taken before reading a row from the database; ``put`` stores the row only if nothing was
        invalidated since (the read may have seen the state before that change)."""
        return self.generation if self.enabled else None

    def put(self, token: int | None, row: Any) -> None:
        if token is None or token != self.generation or not self.enabled:
            return
        if row.id not in self._rows and len(self._rows) >= self.max_entries:
            self._discard(next(iter(self._rows)))
        self._discard(row.id)
        self._rows[row.id] = row
        self._ids[(row.tenant_id, self._key_of(row))] = row.id

    def invalidate(self, ids: set[str]) -> None:
        self.generation += 1
        if EVERYTHING in ids:
            self.clear()
            return
        for object_id in ids:
            self._discard(object_id)

    def clear(self) -> None:
        self.generation += 1
        self._rows.clear()
        self._ids.clear()

    def _discard(self, object_id: str) -> None:
        row = self._rows.pop(object_id, None)
        if row is not None:
            self._ids.pop((row.tenant_id, self._key_of(row)), None)


class RowCaches:
    """The row caches of one database (one per cached table) and the listener that keeps them correct."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.tables: dict[str, RowCache] = {}
        self._enabled = False
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        _LIVE.add(self)

    def get(self, table: str) -> RowCache | None:
        cache = self.tables.get(table)
        if cache is None and table in _KEYS:
            cache = self.tables[table] = RowCache(table, self.max_entries)
            cache.enabled = self._enabled
        return cache

    def invalidate(self, changes: dict[str, set[str]]) -> None:
        for table, ids in changes.items():
            cache = self.tables.get(table)
            if cache is not None:
                cache.invalidate(ids)

    @property
    def listening(self) -> bool:
        return self._enabled

    def _set_enabled(self, enabled: bool) -> None:
        self._enabled = enabled
        LISTENING.set(1 if enabled else 0)
        for cache in self.tables.values():
            cache.clear()
            cache.enabled = enabled
        _tell_followers(EVERYTHING, EVERYTHING)

    def start(self, dsn: str, *, ping_seconds: float = 5.0) -> None:
        """Listen for changes from every process; the caches turn on once the listener is connected."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._listen(dsn, ping_seconds))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_enabled(False)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        table, _, object_id = payload.partition(":")
        self.invalidate({table: {object_id}})
        _tell_followers(table, object_id)

    async def _listen(self, dsn: str, ping_seconds: float) -> None:
        import asyncpg

        backoff = 0.1
        while not self._stop.is_set():
            conn: Any = None
            try:
                conn = await asyncpg.connect(
                    dsn, timeout=10, server_settings={"application_name": LISTENER_NAME}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                # Listening now: every change committed from here on reaches _on_notify. Anything before
                # was never cached (disabled) or is emptied here.
                self._set_enabled(True)
                backoff = 0.1
                while not self._stop.is_set() and not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), ping_seconds)
                    if not self._stop.is_set():
                        await conn.fetchval("SELECT 1", timeout=ping_seconds)
            except Exception as exc:  # any failure: bypass the caches (finally) and reconnect
                log.warning("row_cache_listener_lost", error=repr(exc))
            finally:
                self._set_enabled(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            if not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)


_LIVE: weakref.WeakSet[RowCaches] = weakref.WeakSet()


def session_caches(session_info: dict[str, Any], table: str) -> RowCache | None:
    caches: RowCaches | None = session_info.get(ROW_CACHES)
    return caches.get(table) if caches is not None else None


# ------------------------------------------------------------------ this process: invalidate on commit


def invalidate_on_commit(session: Session | AsyncSession, table: str, object_id: str) -> None:
    """Drop a row from this process's caches when ``session`` commits. For a change made by a Core
    statement on the table, which neither the flush tracking nor the bulk-statement hook can attribute to
    rows (other processes learn of it from the trigger either way)."""
    if table in _KEYS:
        _touched(session).setdefault(table, set()).add(object_id)


def _touched(session: Session | AsyncSession) -> dict[str, set[str]]:
    touched: dict[str, set[str]] = session.info.setdefault(_TOUCHED, {})
    return touched


@event.listens_for(Session, "after_flush")
def _remember_flushed_rows(session: Session, _context: Any) -> None:
    for obj in itertools.chain(session.new, session.dirty, session.deleted):
        table = getattr(obj, "__tablename__", None)
        if table in _KEYS:
            _touched(session).setdefault(table, set()).add(obj.id)


@event.listens_for(Session, "do_orm_execute")
def _remember_bulk_changes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.bind_mapper is None:
        return
    table = getattr(state.bind_mapper.local_table, "name", None)
    if table in _KEYS:
        _touched(state.session).setdefault(table, set()).add(EVERYTHING)


@event.listens_for(Session, "after_commit")
def _invalidate_committed(session: Session) -> None:
    touched = session.info.pop(_TOUCHED, None)
    if touched:
        for caches in list(_LIVE):
            caches.invalidate(touched)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_TOUCHED, None)
