"""Keyset paging shared by every list: the last row's sort key travels in an opaque token, so a page
costs the same at any depth and rows inserted meanwhile neither repeat nor vanish."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.errors import BadRequest


@dataclass(frozen=True)
class SortKey:
    expression: Any  # a SQL expression that is never NULL (callers coalesce)
    descending: bool = False
    kind: str = "string"  # how the key is carried in the token: string | datetime | boolean | int


def encode_token(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")


def decode_token(token: str, keys: list[SortKey]) -> list[Any]:
    error = BadRequest("The $skiptoken is invalid.", code="Request_BadRequest")
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise error from exc
    if not isinstance(raw, list) or len(raw) != len(keys):
        raise error
    values: list[Any] = []
    for value, key in zip(raw, keys, strict=True):
        try:
            if key.kind == "datetime":
                values.append(datetime.fromisoformat(value))
            elif key.kind == "boolean" and isinstance(value, bool):
                values.append(value)
            elif key.kind == "int" and isinstance(value, int):
                values.append(value)
            elif key.kind == "string" and isinstance(value, str) and "\x00" not in value:
                values.append(value)
            else:
                raise error
        except (TypeError, ValueError) as exc:
            raise error from exc
    return values


def after_clause(keys: list[SortKey], values: list[Any]) -> Any:
    """(k1 > v1) OR (k1 = v1 AND k2 > v2) OR …, each comparison flipped for descending keys."""
    alternatives = []
    for i, key in enumerate(keys):
        equal_prefix = [keys[j].expression == values[j] for j in range(i)]
        step = key.expression < values[i] if key.descending else key.expression > values[i]
        alternatives.append(and_(*equal_prefix, step))
    return or_(*alternatives)


@dataclass
class Page:
    rows: list[Any]
    next_token: str | None


async def fetch_page(
    session: AsyncSession, stmt: Select[Any], keys: list[SortKey], *, limit: int, token: str | None
) -> Page:
    """``stmt`` selects one entity; ``keys`` end with a unique key (the id) so the order is total."""
    if token:
        stmt = stmt.where(after_clause(keys, decode_token(token, keys)))
    order = [k.expression.desc() if k.descending else k.expression.asc() for k in keys]
    key_columns = [k.expression.label(f"_k{i}") for i, k in enumerate(keys)]
    result = await session.execute(stmt.add_columns(*key_columns).order_by(*order).limit(limit + 1))
    rows = result.all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_token = encode_token(list(rows[-1][1:])) if more and rows else None
    return Page([r[0] for r in rows], next_token)
