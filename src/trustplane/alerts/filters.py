"""The one MCAS filter engine: ``{"filters": {field: {operator: value}}}`` compiled to SQL conditions over a
per-resource field map (activities, alerts), every field typed and with the operators MCAS documents for it.
Filters are ANDed, as MCAS says; an unknown field, an operator the field does not take or a value of the
wrong type is a ``BadRequest`` naming it, so nothing runs on a filter that was misunderstood.

Value shapes follow the MCAS operator table: ``eq`` / ``neq`` / ``contains`` / ``startswith`` … take a list
(a single value is accepted as a list of one), ``gt`` / ``gte`` / ``lt`` / ``lte`` one value, ``range`` a list
of ``{"start", "end"}``, ``gte_ndays`` / ``lte_ndays`` a number of days, ``isset`` / ``isnotset`` a boolean,
``startswithsingle`` and ``text`` one string."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_

from trustplane.core.errors import BadRequest

DAY_MS = 86_400_000

STRING, INTEGER, BOOLEAN, TIMESTAMP = "string", "integer", "boolean", "timestamp"

LIST_OPS = {"eq", "neq", "contains", "ncontains", "startswith", "doesnotstartwith", "endswith"}
SINGLE_OPS = {"gt", "gte", "lt", "lte"}
KNOWN_OPS = (
    LIST_OPS
    | SINGLE_OPS
    | {"range", "gte_ndays", "lte_ndays", "isset", "isnotset", "startswithsingle", "text"}
    | {"deq", "descendantof", "ndescendantof"}
)


@dataclass(frozen=True)
class Field:
    """A filterable field: its MCAS type, the operators MCAS documents for it, and the column (or, for
    ``text``, the columns searched). ``convert`` maps a wire value to the stored one (e.g. a boolean
    ``alertOpen`` to resolution status)."""

    type: str
    operators: frozenset[str]
    column: Any
    text_columns: tuple[Any, ...] = ()
    custom: Callable[[str, Any], ColumnElement[bool]] | None = None
    # An MCAS "entity pk" field: a value may be ``{"id": "…", "inst": 0}`` as MCAS writes it, or the id.
    entity: bool = False


def field(type_: str, ops: str, column: Any, **kw: Any) -> Field:
    return Field(type_, frozenset(o.strip().lower() for o in ops.split(",")), column, **kw)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_scalar(name: str, f: Field, value: Any) -> Any:
    if f.entity and isinstance(value, dict):
        if not isinstance(value.get("id"), str) or set(value) - {"id", "inst", "saas"}:
            raise BadRequest(f'Filter \'{name}\' takes entity ids or {{"id": "…", "inst": 0}} objects.')
        value = value["id"]
    if f.type == STRING:
        if not isinstance(value, str):
            raise BadRequest(f"Filter '{name}' takes strings; got {value!r}.")
        if "\x00" in value:
            raise BadRequest(f"Filter '{name}': a value contains a NUL character.")
        return value
    if f.type in (INTEGER, TIMESTAMP):
        if isinstance(value, bool) or not isinstance(value, int):
            kind = "epoch milliseconds (an integer)" if f.type == TIMESTAMP else "integers"
            raise BadRequest(f"Filter '{name}' takes {kind}; got {value!r}.")
        if not -(2**62) < value < 2**62:
            raise BadRequest(f"Filter '{name}': {value} is out of range.")
        return value
    if f.type == BOOLEAN:
        if not isinstance(value, bool):
            raise BadRequest(f"Filter '{name}' takes true or false; got {value!r}.")
        return value
    raise AssertionError(f.type)


def _values(name: str, op: str, f: Field, raw: Any) -> list[Any]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise BadRequest(f"Filter '{name}': '{op}' needs at least one value.")
    if len(items) > 1000:
        raise BadRequest(f"Filter '{name}': '{op}' takes at most 1000 values.")
    return [_check_scalar(name, f, v) for v in items]


def _days(name: str, op: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 36_500:
        raise BadRequest(f"Filter '{name}': '{op}' takes a number of days between 0 and 36500.")
    return float(raw)


def _condition(name: str, f: Field, op: str, raw: Any, now_ms: int) -> ColumnElement[bool]:
    col = f.column
    if f.custom is not None and op in ("eq", "neq"):
        values = _values(name, op, f, raw)
        cond = or_(*(f.custom(name, v) for v in values))
        return not_(cond) if op == "neq" else cond
    if op == "eq":
        values = _values(name, op, f, raw)
        return col.in_(values) if len(values) > 1 else col == values[0]
    if op == "neq":  # "not containing all the provided values": rows without a value count too
        return or_(col.is_(None), col.not_in(_values(name, op, f, raw)))
    if op in SINGLE_OPS:
        if isinstance(raw, list):
            raise BadRequest(f"Filter '{name}': '{op}' takes a single value, not a list.")
        value = _check_scalar(name, f, raw)
        return {"gt": col > value, "gte": col >= value, "lt": col < value, "lte": col <= value}[op]
    if op == "range":
        ranges = raw if isinstance(raw, list) else [raw]
        conds = []
        for r in ranges:
            if not isinstance(r, dict) or set(r) != {"start", "end"}:
                raise BadRequest(f"Filter '{name}': 'range' takes a list of {{\"start\", \"end\"}} objects.")
            start, end = _check_scalar(name, f, r["start"]), _check_scalar(name, f, r["end"])
            conds.append(and_(col >= start, col <= end))
        if not conds:
            raise BadRequest(f"Filter '{name}': 'range' needs at least one range.")
        return or_(*conds)
    if op in ("gte_ndays", "lte_ndays"):
        cutoff = now_ms - int(_days(name, op, raw) * DAY_MS)
        return col >= cutoff if op == "gte_ndays" else col <= cutoff
    if op in ("isset", "isnotset"):
        if not isinstance(raw, bool):
            raise BadRequest(f"Filter '{name}': '{op}' takes true or false.")
        has_value = and_(col.is_not(None), col != "") if f.type == STRING else col.is_not(None)
        return has_value if raw == (op == "isset") else not_(has_value)
    if op in ("contains", "ncontains", "startswith", "doesnotstartwith", "endswith", "startswithsingle"):
        if op == "startswithsingle":
            if not isinstance(raw, str):
                raise BadRequest(f"Filter '{name}': 'startswithsingle' takes one string.")
            values = [_check_scalar(name, f, raw)]
        else:
            values = _values(name, op, f, raw)
        pattern = {
            "contains": "%{}%",
            "ncontains": "%{}%",
            "startswith": "{}%",
            "startswithsingle": "{}%",
            "doesnotstartwith": "{}%",
            "endswith": "%{}",
        }[op]
        likes = [col.ilike(pattern.format(_like_escape(v)), escape="\\") for v in values]
        if op in ("ncontains", "doesnotstartwith"):  # not containing / starting with any of them
            return or_(col.is_(None), not_(or_(*likes)))
        return or_(*likes)
    if op == "text":
        if not isinstance(raw, str) or not raw.strip():
            raise BadRequest(f"Filter '{name}': 'text' takes a non-empty string.")
        _check_scalar(name, Field(STRING, frozenset(), None), raw)
        words = raw.split()
        columns = f.text_columns or (col,)
        return and_(*(or_(*(c.ilike(f"%{_like_escape(w)}%", escape="\\") for c in columns)) for w in words))
    raise BadRequest(f"Filter '{name}': the operator '{op}' is not supported.")


def compile_filters(filters: Any, fields: Mapping[str, Field], *, now_ms: int) -> list[ColumnElement[bool]]:
    """The SQL conditions of an MCAS ``filters`` object (ANDed by the caller), or a ``BadRequest``."""
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise BadRequest('\'filters\' must be an object: {"field": {"operator": value}}.')
    by_lower = {k.lower(): k for k in fields}
    conditions: list[ColumnElement[bool]] = []
    for name, ops in filters.items():
        key = name if name in fields else by_lower.get(name.lower())
        if key is None:
            raise BadRequest(f"Unknown filter field '{name}'. Known fields: {', '.join(sorted(fields))}.")
        f = fields[key]
        if not isinstance(ops, dict) or not ops:
            raise BadRequest(f"Filter '{name}' must be an object of operators, e.g. {{\"eq\": [...]}}.")
        for op_name, raw in ops.items():
            op = op_name.lower()
            if op not in KNOWN_OPS:
                raise BadRequest(f"Filter '{name}': unknown operator '{op_name}'.")
            if op not in f.operators:
                raise BadRequest(
                    f"Filter '{name}' does not take '{op_name}'; it takes {', '.join(sorted(f.operators))}."
                )
            conditions.append(_condition(key, f, op, raw, now_ms))
    return conditions
