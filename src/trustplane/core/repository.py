"""The one tenant-scoping helper. Every query a repository writes starts from ``self.select()`` (or
``self.where``), so a query that forgets the tenant cannot be written by accident."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Delete

from trustplane.core.cache import RowCache, session_caches
from trustplane.core.db import READ_ONLY

M = TypeVar("M", bound=Any)

# One "by id in this tenant" statement per model, with both values bound at execution: building it afresh
# on every ``get`` (and SQLAlchemy extracting its literals again) cost about 150 us of CPU per call, an eighth
# of a GET /v1.0/users/{id} (docs/benchmarks.md).
_BY_ID: dict[type[Any], Select[Any]] = {}


def _by_id_statement(model: type[Any]) -> Select[Any]:
    stmt = _BY_ID.get(model)
    if stmt is None:
        stmt = select(model).where(
            model.tenant_id == bindparam("_tenant_id"), model.id == bindparam("_object_id")
        )
        _BY_ID[model] = stmt
    return stmt


# The same as a Core statement over the table: every column, no ORM identity.
_RECORD_BY_ID: dict[type[Any], Select[Any]] = {}


def _record_statement(model: type[Any]) -> Select[Any]:
    stmt = _RECORD_BY_ID.get(model)
    if stmt is None:
        table = model.__table__
        stmt = select(table).where(
            table.c.tenant_id == bindparam("_tenant_id"), table.c.id == bindparam("_object_id")
        )
        _RECORD_BY_ID[model] = stmt
    return stmt


class TenantRepository(Generic[M]):
    model: type[M]

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def select(self, *entities: Any) -> Select[Any]:
        stmt = select(*entities) if entities else select(self.model)
        return stmt.where(self.model.tenant_id == self.tenant_id)

    def delete_where(self, *criteria: Any) -> Delete:
        return delete(self.model).where(self.model.tenant_id == self.tenant_id, *criteria)

    async def get(self, object_id: str) -> M | None:
        """The object with this id in this tenant (the same query as ``self.select()`` by id)."""
        result = await self.session.execute(
            _by_id_statement(self.model), {"_tenant_id": self.tenant_id, "_object_id": object_id}
        )
        return result.scalar_one_or_none()

    @property
    def row_cache(self) -> RowCache | None:
        """The process's cache of this table, when the session is read-only and the table is cached."""
        return session_caches(self.session.info, self.model.__tablename__)

    async def record(self, object_id: str) -> Any | None:
        """The object with this id in this tenant as an immutable record (a named tuple or Core ``Row``:
        every column by name, no ORM identity), for requests that only read: from the row cache when it
        has it, else one statement (in a read-only session, shared with the other reads of the table by id in
        flight at the time: ``Database.record_by_id``)."""
        if self.session.info.get(READ_ONLY) is None:
            return await self.cached_record(
                lambda cache: cache.get(self.tenant_id, object_id),
                _record_statement(self.model),
                {"_tenant_id": self.tenant_id, "_object_id": object_id},
            )
        return await self.batched_record(
            lambda cache: cache.get(self.tenant_id, object_id), "id", None, object_id
        )

    async def batched_record(
        self, lookup: Callable[[RowCache], Any | None], name: str, key: ColumnElement[Any] | None, value: str
    ) -> Any | None:
        """In a read-only session: a record through the row cache (``lookup``), else read by ``key`` (named
        ``name``; None: the id) together with the other such reads in flight (``Database.record_by_key``)."""
        cache = self.row_cache
        if cache is not None:
            hit = lookup(cache)
            if hit is not None:
                return hit
        token = cache.read_token() if cache is not None else None  # taken before the batch's query starts
        database = self.session.info[READ_ONLY]
        row = await database.record_by_key(self.model.__table__, name, key, self.tenant_id, value)
        if cache is not None and row is not None:
            cache.put(token, row)
        return row

    async def cached_record(
        self, lookup: Callable[[RowCache], Any | None], stmt: Select[Any], params: dict[str, Any]
    ) -> Any | None:
        """A record through the row cache: ``lookup`` finds it there; on a miss ``stmt`` reads it, and the
        cache keeps it unless a change was committed meanwhile (the read may predate it)."""
        cache = self.row_cache
        if cache is not None:
            hit = lookup(cache)
            if hit is not None:
                return hit
        token = cache.read_token() if cache is not None else None
        row = await self.fetch_record(stmt, params)
        if cache is not None and row is not None:
            cache.put(token, row)
        return row

    async def fetch_record(self, stmt: Select[Any], params: dict[str, Any]) -> Any | None:
        """One row of a tenant-scoped Core statement. A read-only session's statements autocommit anyway,
        so it is read outside the session (``Database.fetch_record``); otherwise in the session, which sees
        its own pending writes."""
        database = self.session.info.get(READ_ONLY)
        if database is not None:
            return await database.fetch_record(stmt, params)
        return (await self.session.execute(stmt, params)).first()

    async def fetch_scalars(self, stmt: Select[Any], params: dict[str, Any]) -> list[Any]:
        """The first column of every row of a tenant-scoped Core statement, read as ``fetch_record`` reads."""
        database = self.session.info.get(READ_ONLY)
        if database is not None:
            return [row[0] for row in await database.fetch_records(stmt, params)]
        return list((await self.session.execute(stmt, params)).scalars())

    def add(self, obj: M) -> M:
        obj.tenant_id = self.tenant_id
        self.session.add(obj)
        return obj

    async def remove(self, obj: M) -> None:
        if obj.tenant_id != self.tenant_id:  # defensive: never delete across tenants
            raise ValueError("object belongs to another tenant")
        await self.session.delete(obj)
