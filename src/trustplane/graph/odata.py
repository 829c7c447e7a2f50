"""OData query options for every Graph collection: $filter, $orderby, $select, $top and $search.

This module owns the grammar (a hand-written tokenizer and recursive-descent parser whose errors carry
0-based positions), the type rules and the translation to SQLAlchemy Core expressions. Routers map
wire names to columns with ``Field``/``CollectionField`` and never see the text of a query option.

$filter follows OData's two-valued logic: a comparison with a null value is false and ``not`` of it is
true (so ``displayName ne 'x'`` includes users without a displayName). The compiler gets this by pushing
``not`` down to the leaves rather than emitting SQL NOT over a possibly NULL comparison.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeAlias

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "MAX_DEPTH",
    "MAX_IN_ITEMS",
    "MAX_LENGTH",
    "AnyLambda",
    "BoolOp",
    "CollectionField",
    "Comparison",
    "ComparisonOp",
    "Field",
    "FieldType",
    "Fields",
    "FunctionCall",
    "FunctionName",
    "InList",
    "LiteralKind",
    "LiteralValue",
    "Node",
    "Not",
    "ODataQueryError",
    "Operand",
    "OrderKey",
    "Property",
    "RangeVariable",
    "SearchTerm",
    "compile_filter",
    "compile_search",
    "parse_filter",
    "parse_orderby",
    "parse_search",
    "parse_select",
    "parse_top",
]

MAX_LENGTH = 4096  # characters, for every query option
MAX_DEPTH = 32  # nested '(' / not / any( in $filter
MAX_IN_ITEMS = 100  # values in one 'in' list


class ODataQueryError(ValueError):
    """Bad query option; .message (str, human readable, says what and where), .position (int | None,
    0-based char offset)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


FieldType = Literal["string", "boolean", "datetime", "int", "guid"]


@dataclass(frozen=True)
class Field:
    """A single-valued property mapped to a SQL column."""

    name: str  # Graph wire name, e.g. "userPrincipalName"
    column: Any  # SQLAlchemy ColumnElement (or ORM attribute)
    type: FieldType = "string"
    filterable: bool = True
    orderable: bool = True
    searchable: bool = False  # allowed in $search "prop:term"


@dataclass(frozen=True)
class CollectionField:
    """A multi-valued property stored one value per row in a side table (object_id, attr, value)."""

    name: str
    table: Any  # SQLAlchemy Table of the side table
    owner_id: Any  # the main table's id column, correlated with table.c.object_id
    attr: str  # the value of table.c.attr for this property (usually == name)
    type: FieldType = "string"


Fields: TypeAlias = Mapping[str, Field | CollectionField]


# --------------------------------------------------------------------------------------------- AST

LiteralKind = Literal["string", "boolean", "int", "datetime", "guid", "null"]
ComparisonOp = Literal["eq", "ne", "gt", "ge", "lt", "le"]
FunctionName = Literal["startswith", "endswith"]


@dataclass(frozen=True, slots=True)
class LiteralValue:
    """``value`` is str (unescaped), bool, int, datetime (aware, UTC), str (lowercase GUID) or None."""

    value: str | bool | int | datetime | None
    kind: LiteralKind
    position: int


@dataclass(frozen=True, slots=True)
class Property:
    name: str  # as written; resolved case-insensitively at compile time
    position: int


@dataclass(frozen=True, slots=True)
class RangeVariable:
    """The lambda variable of ``any(x: ...)``: one element of the collection."""

    name: str
    position: int


Operand: TypeAlias = Property | RangeVariable


@dataclass(frozen=True, slots=True)
class Comparison:
    op: ComparisonOp
    target: Operand
    value: LiteralValue
    position: int  # of the operator


@dataclass(frozen=True, slots=True)
class InList:
    target: Operand
    values: tuple[LiteralValue, ...]
    position: int  # of 'in'


@dataclass(frozen=True, slots=True)
class FunctionCall:
    name: FunctionName
    target: Operand
    value: LiteralValue
    position: int


@dataclass(frozen=True, slots=True)
class AnyLambda:
    """``collection/any(variable: predicate)``; ``any()`` without arguments has neither (non-empty test)."""

    collection: Property
    variable: str | None
    predicate: Node | None
    position: int  # of 'any'


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    position: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    """n-ary so that long and/or chains stay flat (no deep recursion when compiling)."""

    op: Literal["and", "or"]
    operands: tuple[Node, ...]
    position: int  # of the first operator


Node: TypeAlias = Comparison | InList | FunctionCall | AnyLambda | Not | BoolOp


# ------------------------------------------------------------------------------------- tokenizer


class _Tok(NamedTuple):
    kind: str  # string datetime guid int name punct quote junk end
    text: str
    pos: int
    spaced: bool  # whitespace precedes it: OData requires it around eq, and, in, ...


# One alternation scanned with finditer; 'quote' and 'junk' catch the rest so errors come in text order.
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)(?![\w.:+-])
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![\w-])
  | (?P<int>-?\d+)(?![\w.:-])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),/:])
  | (?P<quote>')
  | (?P<junk>[^\s(),/:']+)
    """,
    re.VERBOSE,
)
_GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_COMPARISON_OPS: dict[str, ComparisonOp] = {
    "eq": "eq",
    "ne": "ne",
    "gt": "gt",
    "ge": "ge",
    "lt": "lt",
    "le": "le",
}
_UNSUPPORTED_OPS = frozenset({"has", "add", "sub", "mul", "div", "divby", "mod"})
_FUNCTIONS: dict[str, FunctionName] = {"startswith": "startswith", "endswith": "endswith"}
_RESERVED = frozenset({"and", "or", "not", "in", "true", "false", "null", *_COMPARISON_OPS})


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    append = toks.append
    spaced = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind == "ws":
            spaced = True
            continue
        append(_Tok(kind or "junk", m.group(), m.start(), spaced))
        spaced = False
    append(_Tok("end", "", len(text), True))
    return toks


def _show(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end of the text"
    if tok.kind == "quote":
        return "an unterminated string literal (quote strings with ' and write a ' inside as '')"
    if tok.kind == "string":
        return f"the string {_show(tok.text)}"
    return f"'{_show(tok.text)}'"


def _syntax_error(message: str, position: int) -> ODataQueryError:
    return ODataQueryError(f"Syntax error at position {position} in $filter: {message}", position)


def _filter_error(message: str, position: int | None) -> ODataQueryError:
    where = "" if position is None else f" at position {position}"
    return ODataQueryError(f"Invalid $filter{where}: {message}", position)


def _option_error(option: str, message: str, position: int | None) -> ODataQueryError:
    where = "" if position is None else f" at position {position}"
    return ODataQueryError(f"Invalid {option}{where}: {message}", position)


def _check_length(text: str, option: str) -> None:
    if len(text) > MAX_LENGTH:
        raise _option_error(option, f"the value is longer than {MAX_LENGTH} characters", None)


# ---------------------------------------------------------------------------------------- parser


def _parse_datetime(tok: _Tok) -> datetime:
    try:
        value = datetime.fromisoformat(tok.text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # no offset given: Graph datetimes are UTC
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _syntax_error(f"'{tok.text}' is not a valid date and time", tok.pos) from None


class _Parser:
    """Recursive descent: or_expr > and_expr > unary (not, parentheses) > comparison."""

    __slots__ = ("_depth", "_i", "_lambda_var", "_toks")

    def __init__(self, toks: list[_Tok]) -> None:
        self._toks = toks
        self._i = 0
        self._depth = 0
        self._lambda_var: str | None = None  # lowercased, while parsing the body of any()

    def parse(self) -> Node:
        node = self._or()
        tok = self._toks[self._i]
        if tok.kind != "end":
            if tok.kind == "punct" and tok.text == ")":
                raise _syntax_error("unmatched ')'", tok.pos)
            raise self._expected("'and', 'or' or the end of the expression", tok)
        return node

    # -- helpers

    def _expected(self, what: str, tok: _Tok) -> ODataQueryError:
        return _syntax_error(f"expected {what} but found {_describe(tok)}", tok.pos)

    def _word(self, tok: _Tok) -> str:
        return tok.text.lower() if tok.kind == "name" else ""

    def _is_punct(self, tok: _Tok, char: str) -> bool:
        return tok.kind == "punct" and tok.text == char

    def _expect(self, char: str, context: str) -> _Tok:
        tok = self._toks[self._i]
        if not self._is_punct(tok, char):
            raise self._expected(f"'{char}' {context}", tok)
        self._i += 1
        return tok

    def _enter(self, tok: _Tok) -> None:
        # Bounded here so hostile input gets an error, never a RecursionError.
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _syntax_error(f"the expression is nested more than {MAX_DEPTH} levels deep", tok.pos)

    def _operator(self) -> _Tok:
        """Consume a binary operator, checking the whitespace OData requires on both sides."""
        tok = self._toks[self._i]
        self._i += 1
        after = self._toks[self._i]
        if not tok.spaced:
            raise _syntax_error(f"expected whitespace before '{tok.text}'", tok.pos)
        if not after.spaced and not (self._word(tok) == "in" and self._is_punct(after, "(")):
            raise _syntax_error(f"expected whitespace after '{tok.text}'", after.pos)
        return tok

    # -- grammar

    def _or(self) -> Node:
        parts = [self._and()]
        position = -1
        while self._word(self._toks[self._i]) == "or":
            tok = self._operator()
            position = tok.pos if position < 0 else position
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts), position)

    def _and(self) -> Node:
        parts = [self._unary()]
        position = -1
        while self._word(self._toks[self._i]) == "and":
            tok = self._operator()
            position = tok.pos if position < 0 else position
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts), position)

    def _unary(self) -> Node:
        tok = self._toks[self._i]
        if self._word(tok) == "not":
            # 'not' applies to the following comparison, call, lambda or parenthesised expression.
            after = self._toks[self._i + 1]
            if not after.spaced and not self._is_punct(after, "("):
                raise _syntax_error("expected whitespace or '(' after 'not'", after.pos)
            self._i += 1
            self._enter(tok)
            operand = self._unary()
            self._depth -= 1
            return Not(operand, tok.pos)
        if self._is_punct(tok, "("):
            self._i += 1
            self._enter(tok)
            node = self._or()
            self._expect(")", f"to close the '(' at position {tok.pos}")
            self._depth -= 1
            return node
        return self._comparison()

    def _comparison(self) -> Node:
        tok = self._toks[self._i]
        if tok.kind != "name":
            if tok.kind in ("string", "int", "datetime", "guid"):
                raise _syntax_error(
                    f"expected a property but found the literal {_show(tok.text)}; "
                    "the property must be on the left of the operator",
                    tok.pos,
                )
            raise self._expected("a comparison, a function call, 'not' or '('", tok)
        if self._word(tok) in ("true", "false", "null"):
            raise _syntax_error(
                f"expected a property but found the literal {tok.text}; "
                "the property must be on the left of the operator",
                tok.pos,
            )
        if self._is_punct(self._toks[self._i + 1], "("):
            return self._function()
        target = self._path()
        if isinstance(target, AnyLambda):
            return target
        op_tok = self._toks[self._i]
        word = self._word(op_tok)
        op = _COMPARISON_OPS.get(word)
        if op is not None:
            self._operator()
            return Comparison(op, target, self._literal(f"after '{op_tok.text}'"), op_tok.pos)
        if word == "in":
            self._operator()
            return InList(target, self._literal_list(), op_tok.pos)
        if word in _UNSUPPORTED_OPS:
            raise _syntax_error(f"the operator '{op_tok.text}' is not supported", op_tok.pos)
        raise self._expected(f"an operator (eq, ne, gt, ge, lt, le or in) after '{_show(tok.text)}'", op_tok)

    def _operand(self, tok: _Tok) -> Operand:
        if self._lambda_var is not None and tok.text.lower() == self._lambda_var:
            return RangeVariable(tok.text, tok.pos)
        return Property(tok.text, tok.pos)

    def _path(self) -> Operand | AnyLambda:
        tok = self._toks[self._i]
        self._i += 1
        operand = self._operand(tok)
        if not self._is_punct(self._toks[self._i], "/"):
            return operand
        self._i += 1
        seg = self._toks[self._i]
        if seg.kind != "name":
            raise self._expected(f"'any' after '{tok.text}/'", seg)
        word = seg.text.lower()
        if word in ("any", "all") and self._is_punct(self._toks[self._i + 1], "("):
            if word == "all":
                raise _syntax_error(
                    "the lambda operator 'all' is not supported; write not(prop/any(x: not (...))) instead",
                    seg.pos,
                )
            if isinstance(operand, RangeVariable):
                raise _syntax_error("any() cannot be applied to a lambda variable", seg.pos)
            if self._lambda_var is not None:
                raise _syntax_error("nested any() is not supported", seg.pos)
            self._i += 1
            return self._lambda(operand, seg)
        raise _syntax_error(
            f"property paths such as '{tok.text}/{_show(seg.text)}' are not supported", tok.pos
        )

    def _lambda(self, collection: Property, any_tok: _Tok) -> AnyLambda:
        self._expect("(", "after 'any'")
        self._enter(any_tok)
        if self._is_punct(self._toks[self._i], ")"):
            self._i += 1
            self._depth -= 1
            return AnyLambda(collection, None, None, any_tok.pos)
        var = self._toks[self._i]
        if var.kind != "name" or var.text.lower() in _RESERVED:
            raise self._expected("a lambda variable name as in any(x: x eq 'value')", var)
        self._i += 1
        self._expect(":", f"after the lambda variable '{var.text}'")
        self._lambda_var = var.text.lower()
        predicate = self._or()
        self._lambda_var = None
        self._expect(")", f"to close '{any_tok.text}(' at position {any_tok.pos}")
        self._depth -= 1
        return AnyLambda(collection, var.text, predicate, any_tok.pos)

    def _function(self) -> FunctionCall | Not:
        tok = self._toks[self._i]
        name = _FUNCTIONS.get(tok.text.lower())
        if name is None:
            raise _syntax_error(
                f"unsupported function '{_show(tok.text)}'; only startswith and endswith are supported",
                tok.pos,
            )
        self._i += 2  # name and '('
        arg = self._toks[self._i]
        if arg.kind != "name" or self._word(arg) in ("true", "false", "null"):
            raise self._expected(f"a property as the first argument of {tok.text}", arg)
        self._i += 1
        if self._is_punct(self._toks[self._i], "/"):
            raise _syntax_error(f"property paths are not supported in {tok.text}", arg.pos)
        target = self._operand(arg)
        self._expect(",", f"after the first argument of {tok.text}")
        value = self._literal(f"as the second argument of {tok.text}")
        self._expect(")", f"to close {tok.text}(")
        call = FunctionCall(name, target, value, tok.pos)
        # OData also allows the explicit form startswith(p, 'x') eq true / ne false / ...
        op_tok = self._toks[self._i]
        word = self._word(op_tok)
        if word not in ("eq", "ne"):
            return call
        self._operator()
        flag = self._toks[self._i]
        if self._word(flag) not in ("true", "false"):
            raise self._expected(
                f"true or false after '{op_tok.text}' (the result of {tok.text} is a Boolean)", flag
            )
        self._i += 1
        return call if (word == "eq") == (self._word(flag) == "true") else Not(call, op_tok.pos)

    def _literal_list(self) -> tuple[LiteralValue, ...]:
        self._expect("(", "after 'in'")
        items: list[LiteralValue] = []
        while True:
            if len(items) == MAX_IN_ITEMS:
                raise _syntax_error(
                    f"an 'in' list may hold at most {MAX_IN_ITEMS} values", self._toks[self._i].pos
                )
            items.append(self._literal("in the 'in' list"))
            tok = self._toks[self._i]
            self._i += 1
            if self._is_punct(tok, ")"):
                return tuple(items)
            if not self._is_punct(tok, ","):
                raise self._expected("',' or ')' in the 'in' list", tok)

    def _literal(self, context: str) -> LiteralValue:
        tok = self._toks[self._i]
        kind = tok.kind
        if kind == "string":
            self._i += 1
            return LiteralValue(tok.text[1:-1].replace("''", "'"), "string", tok.pos)
        if kind == "int":
            # Length first: int() of a huge digit string is slow, and SQLite rejects > 64 bits anyway.
            value = int(tok.text) if len(tok.text) <= 20 else _INT64_MAX + 1
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise _syntax_error(f"the integer {_show(tok.text)} is out of range", tok.pos)
            self._i += 1
            return LiteralValue(value, "int", tok.pos)
        if kind == "datetime":
            self._i += 1
            return LiteralValue(_parse_datetime(tok), "datetime", tok.pos)
        if kind == "guid":
            self._i += 1
            return LiteralValue(tok.text.lower(), "guid", tok.pos)
        if kind == "name":
            word = tok.text.lower()
            if word in ("true", "false"):
                self._i += 1
                return LiteralValue(word == "true", "boolean", tok.pos)
            if word == "null":
                self._i += 1
                return LiteralValue(None, "null", tok.pos)
            raise _syntax_error(
                f"expected a literal {context} but found '{_show(tok.text)}' "
                "(comparing two properties is not supported; quote strings with ')",
                tok.pos,
            )
        raise self._expected(f"a literal {context}", tok)


def parse_filter(text: str) -> Node:
    """Parse a $filter expression into an AST; only syntax is checked here, names and types in compile."""
    if len(text) > MAX_LENGTH:
        raise _filter_error(f"the expression is longer than {MAX_LENGTH} characters", None)
    toks = _tokenize(text)
    if len(toks) == 1:
        raise _filter_error("the expression is empty", 0)
    return _Parser(toks).parse()


# -------------------------------------------------------------------------------------- compiler

_TYPE_NAMES: dict[str, str] = {
    "string": "String",
    "boolean": "Boolean",
    "datetime": "DateTimeOffset",
    "int": "Int64",
    "guid": "Guid",
}
_EXPECTED: dict[str, str] = {
    "string": "a quoted string such as 'text'",
    "boolean": "true or false",
    "datetime": "an unquoted date and time such as 2024-01-01T00:00:00Z",
    "int": "an integer",
    "guid": "a GUID such as '00000000-0000-0000-0000-000000000000'",
}
_LITERAL_NAMES: dict[str, str] = {
    "string": "a string",
    "boolean": "a boolean",
    "int": "an integer",
    "datetime": "a date and time",
    "guid": "a GUID",
    "null": "null",
}
_OPERATORS: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "gt", "ge", "lt", "le", "in"),
    "guid": ("eq", "ne", "in"),
    "boolean": ("eq", "ne"),
    "datetime": ("eq", "ne", "gt", "ge", "lt", "le", "in"),
    "int": ("eq", "ne", "gt", "ge", "lt", "le", "in"),
}
_APPLY: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
# not (a op b) under two-valued logic: the complementary operator, plus "or a is null" unless it is eq.
_COMPLEMENT: dict[str, str] = {"eq": "ne", "ne": "eq", "gt": "le", "ge": "lt", "lt": "ge", "le": "gt"}
_MAX_COMPILE_DEPTH = 4 * MAX_DEPTH  # only reachable with hand-built ASTs; parsed ones are bounded


class _Target(NamedTuple):
    column: Any
    type: str
    label: str  # wire name for messages
    nullable: bool
    aware: bool  # bind datetimes with tzinfo (DateTime(timezone=True) or TypeDecorators of it)


class _Scope(NamedTuple):
    variable: str  # lowercased
    collection: str
    target: _Target


def _target(name: str, column: Any, ftype: str) -> _Target:
    # ORM attributes expose the Column as .expression; plain columns return themselves.
    col = getattr(column, "expression", column)
    nullable = getattr(col, "nullable", True) is not False
    aware = getattr(getattr(col, "type", None), "timezone", True) is not False
    return _Target(column, ftype, name, nullable, aware)


def _lookup(fields: Fields, name: str) -> Field | CollectionField | None:
    field = fields.get(name)
    if field is None:
        lowered = name.lower()
        for key, candidate in fields.items():
            if key.lower() == lowered:
                return candidate
    return field


def _unknown(name: str, position: int) -> ODataQueryError:
    return _filter_error(f"Could not find a property named '{_show(name)}'", position)


def _resolve(operand: Operand, fields: Fields, scope: _Scope | None) -> _Target:
    if isinstance(operand, RangeVariable):
        if scope is None or operand.name.lower() != scope.variable:
            raise _filter_error(f"'{operand.name}' is not a lambda variable in scope", operand.position)
        return scope.target
    if scope is not None:
        raise _filter_error(
            f"only the lambda variable '{scope.variable}' can be used inside {scope.collection}/any(), "
            f"found '{_show(operand.name)}'",
            operand.position,
        )
    field = _lookup(fields, operand.name)
    if field is None:
        raise _unknown(operand.name, operand.position)
    if isinstance(field, CollectionField):
        raise _filter_error(
            f"'{field.name}' is a multi-valued property; filter it with {field.name}/any(x: x eq 'value')",
            operand.position,
        )
    if not field.filterable:
        raise _filter_error(f"the property '{field.name}' does not support filtering", operand.position)
    return _target(field.name, field.column, field.type)


def _coerce(literal: LiteralValue, target: _Target, context: str) -> Any:
    ftype, kind, value = target.type, literal.kind, literal.value
    if ftype == kind and isinstance(value, str):
        return value.lower()  # string or unquoted GUID: compared case-insensitively
    if ftype == "guid" and kind == "string" and isinstance(value, str):
        if _GUID_RE.fullmatch(value) is None:
            raise _filter_error(
                f"'{_show(value)}' is not a valid GUID for the property '{target.label}'", literal.position
            )
        return value.lower()
    if ftype == kind and ftype in ("boolean", "int"):
        return value
    if ftype == kind == "datetime" and isinstance(value, datetime):
        return value if target.aware else value.replace(tzinfo=None)
    raise _filter_error(
        f"the property '{target.label}' is of type {_TYPE_NAMES[ftype]} and expects {_EXPECTED[ftype]} "
        f"{context}, but found {_LITERAL_NAMES[kind]}",
        literal.position,
    )


def _lhs(target: _Target) -> Any:
    # GUIDs are stored in canonical lowercase (core.ids.new_id) and the literal is lowered, so the bare
    # column is compared and the primary-key index stays usable; strings compare case-insensitively.
    return func.lower(target.column) if target.type == "string" else target.column


def _or_null(expr: Any, target: _Target) -> ColumnElement[bool]:
    # Two-valued logic: a negated or 'ne' comparison is true where the value is missing.
    return or_(expr, target.column.is_(None)) if target.nullable else expr


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _compile_comparison(node: Comparison, target: _Target, negate: bool) -> ColumnElement[bool]:
    op: str = node.op
    if node.value.kind == "null":
        if op not in ("eq", "ne"):
            raise _filter_error(f"null can only be compared with eq or ne, not '{op}'", node.position)
        is_null = (op == "eq") != negate
        return target.column.is_(None) if is_null else target.column.is_not(None)
    allowed = _OPERATORS[target.type]
    if op not in allowed:
        raise _filter_error(
            f"the operator '{op}' cannot be used with the {_TYPE_NAMES[target.type]} property "
            f"'{target.label}'; use {', '.join(allowed[:-1])} or {allowed[-1]}",
            node.position,
        )
    value = _coerce(node.value, target, f"after '{op}'")
    if negate:
        op = _COMPLEMENT[op]
    expr = _APPLY[op](_lhs(target), value)
    if op == "ne" or (negate and op != "eq"):
        return _or_null(expr, target)
    return expr


def _compile_in(node: InList, target: _Target, negate: bool) -> ColumnElement[bool]:
    if "in" not in _OPERATORS[target.type]:
        raise _filter_error(
            f"'in' cannot be used with the {_TYPE_NAMES[target.type]} property '{target.label}'",
            node.position,
        )
    values: list[Any] = []
    for literal in node.values:
        if literal.kind == "null":
            raise _filter_error("null is not allowed in an 'in' list; use 'eq null'", literal.position)
        values.append(_coerce(literal, target, "in the 'in' list"))
    values = list(dict.fromkeys(values))
    if negate:
        return _or_null(_lhs(target).not_in(values), target)
    return _lhs(target).in_(values)


def _compile_function(node: FunctionCall, target: _Target, negate: bool) -> ColumnElement[bool]:
    if target.type != "string":
        raise _filter_error(
            f"{node.name} needs a String property but '{target.label}' is {_TYPE_NAMES[target.type]}",
            node.position,
        )
    value = _escape_like(_coerce(node.value, target, f"as the second argument of {node.name}"))
    pattern = value + "%" if node.name == "startswith" else "%" + value
    lhs = _lhs(target)
    if negate:
        return _or_null(lhs.not_like(pattern, escape="\\"), target)
    return lhs.like(pattern, escape="\\")


def _compile_any(node: AnyLambda, fields: Fields, negate: bool, depth: int) -> ColumnElement[bool]:
    field = _lookup(fields, node.collection.name)
    if field is None:
        raise _unknown(node.collection.name, node.collection.position)
    if not isinstance(field, CollectionField):
        raise _filter_error(
            f"any() can only be used on multi-valued properties and '{field.name}' is single-valued",
            node.position,
        )
    side = field.table
    conditions = [side.c.object_id == field.owner_id, side.c.attr == field.attr]
    if node.predicate is not None:
        if node.variable is None:
            raise _filter_error("any() with a predicate needs a lambda variable", node.position)
        scope = _Scope(node.variable.lower(), field.name, _target(field.name, side.c.value, field.type))
        conditions.append(_compile(node.predicate, fields, False, depth + 1, scope))
    exists = select(literal_column("1")).select_from(side).where(*conditions).correlate_except(side).exists()
    return ~exists if negate else exists


def _compile(
    node: Node, fields: Fields, negate: bool, depth: int, scope: _Scope | None
) -> ColumnElement[bool]:
    if depth > _MAX_COMPILE_DEPTH:
        raise _filter_error(f"the expression is nested more than {MAX_DEPTH} levels deep", None)
    if isinstance(node, BoolOp):
        # De Morgan keeps negation at the leaves, where two-valued logic can be spelled out.
        parts = [_compile(part, fields, negate, depth + 1, scope) for part in node.operands]
        return and_(*parts) if (node.op == "and") != negate else or_(*parts)
    if isinstance(node, Not):
        return _compile(node.operand, fields, not negate, depth + 1, scope)
    if isinstance(node, Comparison):
        return _compile_comparison(node, _resolve(node.target, fields, scope), negate)
    if isinstance(node, InList):
        return _compile_in(node, _resolve(node.target, fields, scope), negate)
    if isinstance(node, FunctionCall):
        return _compile_function(node, _resolve(node.target, fields, scope), negate)
    if isinstance(node, AnyLambda):
        if scope is not None:
            raise _filter_error("nested any() is not supported", node.position)
        return _compile_any(node, fields, negate, depth)
    raise TypeError(f"not a $filter node: {node!r}")


def compile_filter(text: str | Node, fields: Fields) -> ColumnElement[bool]:
    """A WHERE clause for a $filter (text or parsed AST) over ``fields``; raises ODataQueryError."""
    node = parse_filter(text) if isinstance(text, str) else text
    return _compile(node, fields, False, 0, None)


# --------------------------------------------------------------------------- $orderby, $select, $top


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: Field
    descending: bool = False

    def clause(self) -> Any:
        """The ORDER BY element for this key."""
        return self.field.column.desc() if self.descending else self.field.column.asc()


_ORDER_ITEM_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?", re.IGNORECASE)
_TOP_RE = re.compile(r"[0-9]{1,10}")


def _split_items(text: str, option: str) -> list[tuple[str, int]]:
    """Comma-separated items, stripped, with the position of each; empty items are errors."""
    _check_length(text, option)
    if not text.strip():
        raise _option_error(option, "the value is empty", 0)
    items: list[tuple[str, int]] = []
    start = 0
    for part in text.split(","):
        item = part.strip()
        position = start + len(part) - len(part.lstrip())
        if not item:
            raise _option_error(option, "expected a property name (empty item in the list)", position)
        items.append((item, position))
        start += len(part) + 1
    return items


def parse_orderby(text: str, fields: Fields) -> list[OrderKey]:
    """``prop [asc|desc], ...``: orderable single-valued properties, each at most once."""
    keys: list[OrderKey] = []
    seen: set[str] = set()
    for item, position in _split_items(text, "$orderby"):
        match = _ORDER_ITEM_RE.fullmatch(item)
        if match is None:
            raise _option_error(
                "$orderby",
                f"expected 'property', 'property asc' or 'property desc' but found '{_show(item)}'",
                position,
            )
        field = _lookup(fields, match.group(1))
        if field is None:
            raise _option_error("$orderby", f"Could not find a property named '{match.group(1)}'", position)
        if isinstance(field, CollectionField) or not field.orderable:
            raise _option_error("$orderby", f"the property '{field.name}' does not support sorting", position)
        if field.name in seen:
            raise _option_error("$orderby", f"the property '{field.name}' is listed more than once", position)
        seen.add(field.name)
        keys.append(OrderKey(field, (match.group(2) or "asc").lower() == "desc"))
    return keys


def parse_select(text: str, allowed: Iterable[str]) -> list[str]:
    """Canonical wire names (matched case-insensitively), de-duplicated in order; ``*`` means all."""
    canonical: dict[str, str] = {}
    for name in allowed:
        canonical.setdefault(name.lower(), name)
    selected: dict[str, None] = {}
    for item, position in _split_items(text, "$select"):
        if item == "*":
            selected.update(dict.fromkeys(canonical.values()))
            continue
        found = canonical.get(item.lower())
        if found is None:
            raise _option_error("$select", f"Could not find a property named '{_show(item)}'", position)
        selected[found] = None
    return list(selected)


def parse_top(text: str, maximum: int = 999) -> int:
    """A page size between 1 and ``maximum``."""
    stripped = text.strip()
    if _TOP_RE.fullmatch(stripped) is None or not 1 <= int(stripped) <= maximum:
        raise _option_error(
            "$top", f"expected an integer between 1 and {maximum} but found '{_show(text)}'", None
        )
    return int(stripped)


# ------------------------------------------------------------------------------------------ $search


@dataclass(frozen=True, slots=True)
class SearchTerm:
    """One ``"property:value"`` clause. AND binds tighter than OR, so the query is an OR of groups:
    terms with the same ``group`` are ANDed together and the groups are ORed."""

    field: Field
    value: str  # unescaped, as written (matching is case-insensitive)
    group: int
    position: int  # of the opening quote


_SEARCH_TOKEN_RE = re.compile(
    r'(?P<ws>\s+)|(?P<term>"(?:[^"\\]|\\.)*")|(?P<word>[^\s"]+)|(?P<quote>".*)',
    re.DOTALL,
)
_SEARCH_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _search_term(raw: str, position: int, group: int, fields: Fields) -> SearchTerm:
    inner = _SEARCH_UNESCAPE_RE.sub(r"\1", raw[1:-1])
    name, colon, value = inner.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        raise _option_error(
            "$search",
            f'expected "property:value" such as "displayName:room" but found {_show(raw)}',
            position,
        )
    if not value:
        raise _option_error("$search", f"the search value for '{_show(name)}' is empty", position)
    field = _lookup(fields, name)
    if field is None:
        raise _option_error("$search", f"Could not find a property named '{_show(name)}'", position)
    if isinstance(field, CollectionField) or not field.searchable or field.type != "string":
        raise _option_error("$search", f"the property '{field.name}' does not support $search", position)
    return SearchTerm(field, value, group, position)


def parse_search(text: str, fields: Fields) -> list[SearchTerm]:
    """Graph $search: ``"prop:value"`` clauses in double quotes joined by AND / OR (\\" escapes a quote)."""
    _check_length(text, "$search")
    terms: list[SearchTerm] = []
    group = 0
    want_term = True
    for m in _SEARCH_TOKEN_RE.finditer(text):
        kind, raw, position = m.lastgroup, m.group(), m.start()
        if kind == "ws":
            continue
        if kind == "quote":
            raise _option_error("$search", 'unterminated quoted term (a missing closing ")', position)
        if want_term:
            if kind != "term":
                raise _option_error(
                    "$search",
                    f'expected a term in double quotes such as "displayName:room" but found {_show(raw)}',
                    position,
                )
            terms.append(_search_term(raw, position, group, fields))
            want_term = False
        elif kind == "word" and raw.upper() in ("AND", "OR"):
            group += raw.upper() == "OR"
            want_term = True
        else:
            raise _option_error(
                "$search", f"expected AND or OR between terms but found {_show(raw)}", position
            )
    if want_term:
        message = "the value is empty" if not terms else "expected a quoted term after AND/OR"
        raise _option_error("$search", message, len(text))
    return terms


def compile_search(text: str, fields: Fields) -> ColumnElement[bool]:
    """Case-insensitive substring match per term, ANDed within groups and ORed across them."""
    groups: dict[int, list[ColumnElement[bool]]] = {}
    for term in parse_search(text, fields):
        pattern = "%" + _escape_like(term.value.lower()) + "%"
        groups.setdefault(term.group, []).append(func.lower(term.field.column).like(pattern, escape="\\"))
    return or_(*(and_(*parts) for parts in groups.values()))
