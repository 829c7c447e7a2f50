"""The database: one declarative base, column types that behave the same on SQLite and PostgreSQL,
the async engine and the session a request or a job owns."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    CompoundSelect,
    DateTime,
    MetaData,
    Select,
    String,
    Table,
    any_,
    bindparam,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from trustplane.core.cache import ROW_CACHES, RowCaches
from trustplane.core.clock import to_utc

# ``session.info`` key of a read-only session (``Database.read_only``): the Database it reads from.
READ_ONLY = "trustplane.read_only"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on both backends (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = to_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else to_utc(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql"):
        # JSON columns decoded with orjson, as on the read pool (``Database._open_read_pool``)
        return create_async_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            json_deserializer=orjson.loads,
        )
    return create_async_engine(url, echo=echo, poolclass=NullPool)


async def _close_to_completion(session: AsyncSession) -> None:
    """``session.close()`` in a task of its own, finished even if the caller is cancelled meanwhile (as
    ``AsyncSession.__aexit__`` does), so a cancelled request never leaves its connection checked out."""
    task = asyncio.ensure_future(session.close())
    cancelled: BaseException | None = None
    while True:
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():
                raise
            cancelled = exc
        else:
            break
    if cancelled is not None:
        raise cancelled


class _Prepared(NamedTuple):
    """A Core SELECT compiled once for the driver: SQL, bind names and processors in positional order,
    the result processors of the columns that have one and the named tuple its rows become."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Callable[[Any], Any] | None, ...]
    # (position, processor, whether a NULL is left as it is) of the columns that have a processor
    active: tuple[tuple[int, Callable[[Any], Any], bool], ...]
    record: Callable[..., Any]
    defaults: dict[str, Any]  # the values of the statement's own literals (binds the caller does not pass)


def _prepare(stmt: Select[Any] | CompoundSelect, dialect: Dialect) -> _Prepared:
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    binds = tuple(compiled.binds[name].type._cached_bind_processor(dialect) for name in names)
    columns = list(stmt.selected_columns)
    processors = tuple(col.type._cached_result_processor(dialect, None) for col in columns)
    active = tuple((i, proc, _keeps_null(proc)) for i, proc in enumerate(processors) if proc is not None)
    # rename: an unnamed column (a literal, a CASE) becomes _<position>
    record = namedtuple("Record", [str(col.key) for col in columns], rename=True)  # type: ignore[misc]
    defaults = {name: value for name, value in compiled.params.items() if value is not None}
    return _Prepared(compiled.string, names, binds, active, record, defaults)


def _keeps_null(processor: Callable[[Any], Any]) -> bool:
    """Whether a result processor maps NULL to None (then a NULL need not go through it)."""
    try:
        return processor(None) is None
    except Exception:
        return False


_SESSION_PREPARED: dict[tuple[Any, str], _Prepared] = {}


async def driver_rows(
    session: AsyncSession, stmt: Select[Any] | CompoundSelect, params: dict[str, Any], *, small: bool = False
) -> list[tuple[Any, ...]]:
    """The rows of a read-only SELECT built once by the caller (no expanding parameters), run straight on
    the driver of the session's own connection, in its transaction: one driver call — one round trip on
    asyncpg, one hop to aiosqlite's thread where SQLAlchemy's cursor takes four (cursor, execute, fetch,
    close) — with the columns' own bind and result processors. For a hot read whose SQLAlchemy layers cost
    more than the database (protection's first read of a user: ~0.4-0.7 ms through them against ~70 us of
    SQLite).

    ``small``: a read of at most a few thousand rows by key. On SQLite, while the session's transaction has
    written nothing, it runs in this thread on a read-only connection of its own (``_side_reader``) — what
    the session's connection would read, since SQLite's driver opens no transaction for a SELECT and each
    one sees the last commit — instead of through aiosqlite's thread: a user's ~100 counts took 74-118 us
    in sqlite3 against 147-313 us through aiosqlite, outside a decision (docs/benchmarks.md). Once the
    transaction has written, the read goes through the session's connection and sees those writes."""
    conn = await session.connection()
    dialect = conn.dialect
    key = (stmt, dialect.name)
    prepared = _SESSION_PREPARED.get(key)
    if prepared is None:
        if len(_SESSION_PREPARED) >= 256:  # callers pass statements built once; stay bounded if one does not
            _SESSION_PREPARED.clear()
        prepared = _SESSION_PREPARED[key] = _prepare(stmt, dialect)
    defaults = prepared.defaults
    args = []
    for name, bind in zip(prepared.names, prepared.binds, strict=True):
        value = params[name] if name in params else defaults[name]
        args.append(value if bind is None else bind(value))
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    if dialect.name == "postgresql":
        rows = await driver.fetch(prepared.sql, *args)
        return _processed(rows, prepared.active)
    if small and not driver.in_transaction:
        reader = _side_reader(conn.sync_engine)
        if reader is not None:
            try:
                return _processed(reader.execute(prepared.sql, args).fetchall(), prepared.active)
            except sqlite3.OperationalError:  # busy (a WAL reset in progress): the ordinary way
                pass
    rows = await driver.execute_fetchall(prepared.sql, args)
    return _processed(rows, prepared.active)


_SIDE_READERS: WeakKeyDictionary[Engine, sqlite3.Connection | None] = WeakKeyDictionary()


def _side_reader(engine: Engine) -> sqlite3.Connection | None:
    """A read-only connection to the engine's SQLite file for ``driver_rows(small=True)``, made on first use
    and kept with the engine (None for an in-memory database). It never waits for a lock (timeout 0: in WAL
    mode a reader is refused only while the log is being reset; the caller then reads the ordinary way)."""
    try:
        return _SIDE_READERS[engine]
    except KeyError:
        pass
    path = engine.url.database
    reader: sqlite3.Connection | None = None
    if path and path != ":memory:" and not path.startswith("file:"):
        try:
            uri = "file:" + quote(str(Path(path).resolve())) + "?mode=ro"
            reader = sqlite3.connect(uri, uri=True, timeout=0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            reader = None
    _SIDE_READERS[engine] = reader
    return reader


def _processed(
    rows: Iterable[Sequence[Any]], active: tuple[tuple[int, Any, bool], ...]
) -> list[tuple[Any, ...]]:
    """The driver's rows as tuples, each column with a result processor passed through it (``active``)."""
    if not active:
        return [tuple(row) for row in rows]
    # Only the columns with a processor, and not their NULLs (a row whose processed columns are all NULL is
    # kept as it came): a generator over every column of every row was most of a 100-row read's Python time.
    out: list[tuple[Any, ...]] = []
    for row in rows:
        values: list[Any] | None = None
        for i, proc, keeps_null in active:
            value = row[i]
            if value is None and keeps_null:
                continue
            if values is None:
                values = list(row)
            values[i] = proc(value)
        if values is not None:
            out.append(tuple(values))
        else:
            out.append(row if type(row) is tuple else tuple(row))
    return out


class _RowsByKey:
    """Concurrent reads of one table's rows by (tenant, key), coalesced: a read when none is in flight runs
    its own query at once (the one-row statement, as before); reads arriving while a query is in flight wait
    and go together in the next one (``key = ANY($1)``), so a burst of row-cache misses costs a few round
    trips instead of one each. Every waiter gets its own row (or None: unknown key, or a row of another
    tenant, which the query's tenant condition and the exact match below both keep out); an error of a query
    goes to every waiter of that query. A cancelled read cancels nobody else's (batches run in a task).

    The key is the id, or an expression of the row unique within a tenant (``key``, e.g. the lowercased
    userPrincipalName): then the batch also selects the expression as PostgreSQL computes it and matches on
    that, never on a Python re-computation of it."""

    MAX_BATCH = 256

    def __init__(self, database: Database, table: Table, key: ColumnElement[Any] | None = None) -> None:
        self._database = database
        column = table.c.id if key is None else key
        self._one = select(table).where(
            table.c.tenant_id == bindparam("_tenant_id"), column == bindparam("_object_id")
        )
        self._many = _batch_statement(table, column, with_key=key is not None, dialect=database.dialect)
        self._by_id = key is None
        self._record = namedtuple("Record", [c.key for c in table.columns])  # type: ignore[misc]
        self._waiting: dict[tuple[str, str], list[asyncio.Future[Any]]] = {}
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None  # the batch runner (a reference keeps it alive)
        self.queries = 0  # statements run, for tests and benchmarks

    async def get(self, tenant_id: str, object_id: str) -> Any | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one can still finish
            self._loop, self._busy, self._waiting = loop, False, {}
        if self._busy:
            future: asyncio.Future[Any] = loop.create_future()
            self._waiting.setdefault((tenant_id, object_id), []).append(future)
            return await future
        self._busy = True
        try:
            self.queries += 1
            return await self._database.fetch_record(
                self._one, {"_tenant_id": tenant_id, "_object_id": object_id}
            )
        finally:
            if self._waiting:
                self._task = loop.create_task(self._run())
            else:
                self._busy = False

    async def _run(self) -> None:
        try:
            while self._waiting:
                keys = list(itertools.islice(self._waiting, self.MAX_BATCH))
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    self.queries += 1
                    rows = await self._database.fetch_records(
                        self._many,
                        {"_tenant_ids": sorted({t for t, _ in keys}), "_ids": [i for _, i in keys]},
                    )
                except BaseException as exc:
                    failed = [batch] if isinstance(exc, Exception) else [batch, self._waiting]
                    for waiters in failed:
                        for futures in waiters.values():
                            for future in futures:
                                if not future.done():
                                    future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        self._waiting = {}
                        raise
                    continue
                if self._by_id:
                    found = {(row.tenant_id, row.id): row for row in rows}
                else:  # the last column is the key as the database computed it
                    found = {(row.tenant_id, row[-1]): self._record(*row[:-1]) for row in rows}
                for key, futures in batch.items():
                    row = found.get(key)
                    for future in futures:
                        if not future.done():
                            future.set_result(row)
        finally:
            self._busy = False


def _batch_statement(table: Table, key: ColumnElement[Any], *, with_key: bool, dialect: str) -> Select[Any]:
    """Every column of the rows of ``table`` whose tenant is one of ``_tenant_ids`` and ``key`` one of
    ``_ids`` (and ``key`` itself last, ``with_key``)."""
    stmt = select(table, key.label("batch_key")) if with_key else select(table)
    if dialect == "postgresql":  # one statement text for any number of keys (prepared once by asyncpg)
        return stmt.where(
            table.c.tenant_id == any_(bindparam("_tenant_ids", type_=ARRAY(String))),
            key == any_(bindparam("_ids", type_=ARRAY(String))),
        )
    return stmt.where(
        table.c.tenant_id.in_(bindparam("_tenant_ids", expanding=True)),
        key.in_(bindparam("_ids", expanding=True)),
    )


class Database:
    """Owns the engine and hands out sessions. A session never commits on its own: its owner does."""

    def __init__(self, url: str, *, pool_size: int = 10, row_cache_size: int = 0) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Only PostgreSQL can tell every process of a change (core.cache); the caches stay off until start().
        self.row_caches = (
            RowCaches(row_cache_size) if row_cache_size > 0 and self.dialect == "postgresql" else None
        )
        # Read-only requests run each statement in autocommit: no BEGIN and COMMIT round trips (~90 us of
        # CPU for a Core read, docs/benchmarks.md). Same answers: PostgreSQL's READ COMMITTED takes a new
        # snapshot per statement anyway, and SQLite's driver never opens a transaction for a SELECT.
        self.read_only_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.read_only_sessionmaker = async_sessionmaker(
            self.read_only_engine,
            expire_on_commit=False,
            autoflush=False,
            info={READ_ONLY: self, ROW_CACHES: self.row_caches},
        )
        self._prepared: dict[Select[Any], _Prepared] = {}
        # Driver-level reads (fetch_records, PostgreSQL) run on a fixed-size asyncpg pool of their own, made
        # on first use. SQLAlchemy's pool (pool_size + as many again in overflow) closes an overflow
        # connection when it comes back to a full pool, so 32 reads in flight opened and closed ~700
        # PostgreSQL sessions in a 2-minute benchmark run, each costing the server milliseconds of CPU;
        # this pool never closes a connection for coming back (docs/benchmarks.md). A pool of asyncpg's own
        # also spares the greenlet hops of checking a connection out of SQLAlchemy's (~20 us per read).
        self._read_pool_size = pool_size
        self._read_pool: Any = None
        self._read_pool_lock = asyncio.Lock()
        self._rows_by_key: dict[tuple[Table, str], _RowsByKey] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block ends cleanly, rolls back on any exception.

        A session that never touched the database (a request answered from caches) is simply dropped:
        ``AsyncSession``'s own exit always schedules ``close()`` in a new task, ~150 us of CPU per request
        for nothing (docs/benchmarks.md). A used one is committed or rolled back, which returns its
        connection, and closed only if a transaction is somehow still open."""
        session = self.sessionmaker()
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            if session.in_transaction():
                await session.rollback()
            raise
        finally:
            if session.in_transaction():
                await _close_to_completion(session)

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[AsyncSession]:
        """A session for a request that only reads: autocommit statements, never committed, marked with
        ``READ_ONLY`` in ``session.info`` (repositories may answer such reads from the row cache). Nothing
        written in it would be atomic, so only routes that write nothing take one."""
        session = self.read_only_sessionmaker()
        try:
            yield session
        finally:
            if session.in_transaction():
                await _close_to_completion(session)

    async def fetch_records(self, stmt: Select[Any], params: dict[str, Any]) -> list[Any]:
        """The rows of a read-only SELECT as immutable records (named tuples: every column by name), outside
        any transaction. On PostgreSQL it runs straight on the driver, on a connection of the read pool (see
        ``__init__``), with the columns' own result processors: SQLAlchemy's connection, cursor and result
        layers cost ~190 us of CPU per read on top of ~100 us for asyncpg and a pool (docs/benchmarks.md)."""
        if self.dialect != "postgresql":
            async with self.read_only_engine.connect() as conn:
                return list((await conn.execute(stmt, params)).all())
        prepared = self._prepared.get(stmt)
        if prepared is None:
            if len(self._prepared) >= 256:  # callers pass statements built once; stay bounded if one does not
                self._prepared.clear()
            prepared = self._prepared[stmt] = _prepare(stmt, self.engine.dialect)
        args = [
            bind(params[name]) if bind is not None else params[name]
            for name, bind in zip(prepared.names, prepared.binds, strict=True)
        ]
        pool = self._read_pool or await self._open_read_pool()
        async with pool.acquire() as driver:  # interrupted mid-statement: asyncpg resets or drops it
            rows = await driver.fetch(prepared.sql, *args)
        if not prepared.active:
            return [prepared.record(*row) for row in rows]
        return [prepared.record(*row) for row in _processed(rows, prepared.active)]

    async def fetch_record(self, stmt: Select[Any], params: dict[str, Any]) -> Any | None:
        """The first row of ``fetch_records`` (the statement should select at most one)."""
        rows = await self.fetch_records(stmt, params)
        return rows[0] if rows else None

    async def record_by_id(self, table: Table, tenant_id: str, object_id: str) -> Any | None:
        """The row of ``table`` with this id in this tenant as a record (as ``fetch_record`` reads it), read
        together with the other reads of the table by id in flight at the time (``_RowsByKey``)."""
        return await self.record_by_key(table, "id", None, tenant_id, object_id)

    async def record_by_key(
        self, table: Table, name: str, key: ColumnElement[Any] | None, tenant_id: str, value: str
    ) -> Any | None:
        """The row of ``table`` whose ``key`` (an expression unique within a tenant, named ``name``; None: the
        id) equals ``value`` in this tenant, read together with the other such reads in flight."""
        rows = self._rows_by_key.get((table, name))
        if rows is None:
            rows = self._rows_by_key[table, name] = _RowsByKey(self, table, key)
        return await rows.get(tenant_id, value)

    async def _open_read_pool(self) -> Any:
        import asyncpg

        async with self._read_pool_lock:
            if self._read_pool is None:

                async def init(conn: Any) -> None:
                    # JSON values decoded as SQLAlchemy's asyncpg dialect decodes them on its connections
                    # (``make_engine``): orjson, straight from the bytes, ~0.1-0.5 us per small column
                    # against ~1.3-2.2 us for decoding to str and the stdlib's json.loads
                    await conn.set_type_codec(
                        "json",
                        encoder=str.encode,
                        decoder=orjson.loads,
                        schema="pg_catalog",
                        format="binary",
                    )
                    await conn.set_type_codec(
                        "jsonb",
                        encoder=lambda text: b"\x01" + text.encode(),
                        decoder=lambda raw: orjson.loads(raw[1:]),
                        schema="pg_catalog",
                        format="binary",
                    )

                async def keep_as_is(_conn: Any) -> None:
                    """Only SELECTs in autocommit run here: no session state to reset (the default reset
                    costs a round trip per read); an open transaction is still rolled back by asyncpg."""

                self._read_pool = await asyncpg.create_pool(
                    self._dsn(),
                    min_size=0,
                    max_size=self._read_pool_size,
                    init=init,
                    reset=keep_as_is,
                    server_settings={"application_name": "trustplane reads"},
                )
        return self._read_pool

    def _dsn(self) -> str:
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def start(self) -> None:
        """Turn the row caches on (they follow changes from every process once the listener connects)."""
        if self.row_caches is not None:
            self.row_caches.start(self._dsn())

    async def dispose(self) -> None:
        if self.row_caches is not None:
            await self.row_caches.stop()
        if self._read_pool is not None:
            pool, self._read_pool = self._read_pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()
        await self.engine.dispose()
