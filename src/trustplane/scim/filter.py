"""SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): one tokenizer and precedence parser, reporting
positions, with two back ends: ``to_sql`` compiles a filter to a SQLAlchemy expression over a field map (the
directory's columns, JSON attributes and ``directory_values`` rows), and ``evaluate`` applies a value filter
to one element of a multi-valued attribute (for PATCH paths such as ``emails[type eq "work"].value``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from sqlalchemy import and_, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from trustplane.scim.errors import ScimError, invalid_filter, invalid_path

COMPARE_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le")
MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 50
MAX_CLAUSES = 100  # comparisons in one filter: more is SCIM's tooMany

Value = Union[str, int, float, bool, None]  # noqa: UP007  (a runtime alias)


@dataclass(frozen=True)
class AttrPath:
    """``[schema:]attr[.sub]``; ``schema`` is None when not written."""

    schema: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        head = f"{self.schema}:{self.attr}" if self.schema else self.attr
        return f"{head}.{self.sub}" if self.sub else head


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Value


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class ValueFilter:
    """``attr[filter]``: some element of the multi-valued ``attr`` satisfies ``inner`` (whose paths name
    sub-attributes of the element)."""

    path: AttrPath
    inner: Node


Node = Union[Compare, Present, And, Or, Not, ValueFilter]  # noqa: UP007


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<punct>[()\[\]])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z0-9_:$.-]))
  | (?P<word>[A-Za-z_$][A-Za-z0-9_:$.\-]*|\.[A-Za-z_$][A-Za-z0-9_$\-]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # punct string number word end
    text: str
    pos: int


def tokenize(text: str, error: Callable[[str], ScimError]) -> list[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise error(f"The expression is longer than {MAX_FILTER_LENGTH} characters.")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise error(f"Unexpected character {text[pos]!r} at position {pos}.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _decode_string(token: Token, error: Callable[[str], ScimError]) -> str:
    import json

    try:
        value = json.loads(token.text)
    except ValueError as exc:
        raise error(f"Invalid string at position {token.pos}.") from exc
    if "\x00" in value:
        raise error("A NUL character is not allowed in a filter value.")
    return str(value)


def split_attr_path(text: str, pos: int, error: Callable[[str], ScimError]) -> AttrPath:
    """``urn:…:User:name.givenName`` -> (urn…:User, name, givenName); ``name.givenName`` -> (None, …)."""
    schema: str | None = None
    rest = text
    if text.lower().startswith("urn:"):
        schema, _, rest = text.rpartition(":")
        if not schema or not rest:
            raise error(f"Invalid attribute path {text!r} at position {pos}.")
    parts = rest.split(".")
    if len(parts) > 2 or not all(re.fullmatch(r"[A-Za-z$][A-Za-z0-9_$\-]*", p) for p in parts):
        raise error(f"Invalid attribute path {text!r} at position {pos}.")
    return AttrPath(schema, parts[0], parts[1] if len(parts) == 2 else None)


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, error: Callable[[str], ScimError]) -> None:
        self.error = error
        self.tokens = tokenize(text, error)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.lower() in words

    def expect(self, text: str) -> Token:
        if self.tok.text != text:
            found = self.tok.text or "the end"
            raise self.error(f"Expected '{text}' at position {self.tok.pos}, found {found!r}.")
        return self.take()

    def parse(self) -> Node:
        node = self.or_expr(inner=False)
        if self.tok.kind != "end":
            raise self.error(f"Unexpected {self.tok.text!r} at position {self.tok.pos}.")
        return node

    def or_expr(self, inner: bool) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"The expression nests deeper than {MAX_DEPTH} levels.")
        node = self.and_expr(inner)
        while self.keyword("or"):
            self.take()
            node = Or(node, self.and_expr(inner))
        self.depth -= 1
        return node

    def and_expr(self, inner: bool) -> Node:
        node = self.unary(inner)
        while self.keyword("and"):
            self.take()
            node = And(node, self.unary(inner))
        return node

    def unary(self, inner: bool) -> Node:
        if self.keyword("not"):
            self.take()
            self.expect("(")
            node = self.or_expr(inner)
            self.expect(")")
            return Not(node)
        if self.tok.text == "(":
            self.take()
            node = self.or_expr(inner)
            self.expect(")")
            return node
        return self.attr_expr(inner)

    def attr_path(self) -> AttrPath:
        tok = self.tok
        if tok.kind != "word" or tok.text.startswith("."):
            found = tok.text or "the end"
            raise self.error(f"Expected an attribute name at position {tok.pos}, found {found!r}.")
        self.take()
        return split_attr_path(tok.text, tok.pos, self.error)

    def attr_expr(self, inner: bool) -> Node:
        path = self.attr_path()
        if self.tok.text == "[":
            if inner or path.sub is not None:
                raise self.error(f"A value filter cannot appear here (position {self.tok.pos}).")
            self.take()
            inner_node = self.or_expr(inner=True)
            self.expect("]")
            if self.tok.kind == "word" and self.tok.text.startswith("."):
                sub_tok = self.take()
                sub = AttrPath(None, sub_tok.text[1:])
                inner_node = And(inner_node, self.comparison(sub))
            return ValueFilter(path, inner_node)
        return self.comparison(path)

    def comparison(self, path: AttrPath) -> Node:
        if self.keyword("pr"):
            self.take()
            return Present(path)
        if not self.keyword(*COMPARE_OPS):
            found = self.tok.text or "the end"
            raise self.error(
                f"Expected an operator after '{path}' at position {self.tok.pos}, found {found!r}."
            )
        op = self.take().text.lower()
        return Compare(path, op, self.value())

    def value(self) -> Value:
        tok = self.take()
        if tok.kind == "string":
            return _decode_string(tok, self.error)
        if tok.kind == "number":
            number = float(tok.text)
            return int(number) if number.is_integer() and re.fullmatch(r"-?\d+", tok.text) else number
        if tok.kind == "word" and tok.text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok.text.lower()]
        found = tok.text or "the end"
        raise self.error(f"Expected a value at position {tok.pos}, found {found!r}.")


def _clauses(node: Node) -> int:
    if isinstance(node, (And, Or)):
        return _clauses(node.left) + _clauses(node.right)
    if isinstance(node, (Not, ValueFilter)):
        return _clauses(node.inner)
    return 1


def parse_filter(text: str) -> Node:
    if not text.strip():
        raise invalid_filter("The filter is empty.")
    node = _Parser(text, invalid_filter).parse()
    if _clauses(node) > MAX_CLAUSES:
        raise ScimError(
            400, "tooMany", f"The filter has more than {MAX_CLAUSES} comparisons; narrow it down."
        )
    return node


@dataclass(frozen=True)
class PatchPath:
    """``attr``, ``attr.sub``, ``attr[filter]``, ``attr[filter].sub``, or a bare extension URN (attr "")."""

    schema: str | None
    attr: str
    sub: str | None
    filter: Node | None


def parse_path(text: str, known_schemas: Mapping[str, object]) -> PatchPath:
    """A PATCH ``path``. A path equal to a schema URN names that extension as a whole."""
    text = text.strip()
    if not text:
        raise invalid_path("The path is empty.")
    for urn in known_schemas:
        if text.lower() == urn.lower():
            return PatchPath(urn, "", None, None)
    parser = _Parser(text, invalid_path)
    path = parser.attr_path()
    node: Node | None = None
    sub = path.sub
    if parser.tok.text == "[":
        if path.sub is not None:
            raise invalid_path(f"Invalid path {text!r}.")
        parser.take()
        node = parser.or_expr(inner=True)
        parser.expect("]")
        if parser.tok.kind == "word" and parser.tok.text.startswith("."):
            sub = parser.take().text[1:]
    if parser.tok.kind != "end":
        raise invalid_path(f"Unexpected {parser.tok.text!r} at position {parser.tok.pos} of the path.")
    return PatchPath(path.schema, path.attr, sub, node)


# ---------------------------------------------------------------- evaluation of a value filter


def _get(element: Mapping[str, Any], name: str) -> Any:
    lowered = name.lower()
    for key, value in element.items():
        if key.lower() == lowered:
            return value
    return None


def _compare(actual: Any, op: str, expected: Value, case_exact: bool) -> bool:
    if expected is None:
        return (actual is None) if op == "eq" else (actual is not None) if op == "ne" else False
    if actual is None:
        return op == "ne"
    if isinstance(actual, bool) or isinstance(expected, bool):
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        return False
    a, e = actual, expected
    if isinstance(a, str) and isinstance(e, str) and not case_exact:
        a, e = a.lower(), e.lower()
    if isinstance(a, str) != isinstance(e, str):
        return op == "ne"
    if op == "eq":
        return bool(a == e)
    if op == "ne":
        return bool(a != e)
    if op in ("co", "sw", "ew"):
        if not isinstance(a, str) or not isinstance(e, str):
            return False
        return e in a if op == "co" else a.startswith(e) if op == "sw" else a.endswith(e)
    return bool({"gt": a > e, "ge": a >= e, "lt": a < e, "le": a <= e}[op])


def evaluate(node: Node, element: Any, case_exact: Callable[[str], bool] = lambda _: False) -> bool:
    """Does one element of a multi-valued attribute (a dict, or a plain value as ``value``) match?"""
    if not isinstance(element, Mapping):
        element = {"value": element}
    if isinstance(node, And):
        return evaluate(node.left, element, case_exact) and evaluate(node.right, element, case_exact)
    if isinstance(node, Or):
        return evaluate(node.left, element, case_exact) or evaluate(node.right, element, case_exact)
    if isinstance(node, Not):
        return not evaluate(node.inner, element, case_exact)
    if isinstance(node, ValueFilter):
        raise invalid_path("A value filter cannot be nested.")
    name = node.path.attr if node.path.sub is None else f"{node.path.attr}.{node.path.sub}"
    actual = _get(element, node.path.attr)
    if node.path.sub is not None:
        actual = _get(actual, node.path.sub) if isinstance(actual, Mapping) else None
    if isinstance(node, Present):
        return actual not in (None, "", [], {})
    return _compare(actual, node.op, node.value, case_exact(name))


# ---------------------------------------------------------------- compilation to SQL


@dataclass(frozen=True)
class Scalar:
    """A single-valued attribute as a SQL expression. ``eq`` may be compiled specially (an index's form)."""

    expr: Any
    type: str = "string"  # string boolean dateTime
    case_exact: bool = False
    eq: Callable[[str], ColumnElement[bool]] | None = None
    sortable: bool = True


@dataclass(frozen=True)
class Multi:
    """A multi-valued attribute kept as rows: ``exists(where)`` correlates them with the outer row."""

    exists_where: Callable[[ColumnElement[bool]], ColumnElement[bool]]
    subs: Mapping[str, Scalar]
    default_sub: str = "value"


Field = Union[Scalar, Multi]  # noqa: UP007
FieldResolver = Callable[[AttrPath], Field]


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _parse_datetime(value: Value, path: AttrPath) -> datetime:
    if not isinstance(value, str):
        raise invalid_filter(
            f"'{path}' is a dateTime; compare it with a string such as \"2024-01-31T00:00:00Z\"."
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise invalid_filter(f"{value!r} is not an ISO 8601 dateTime.") from exc
    if parsed.tzinfo is None:
        raise invalid_filter(f"{value!r} has no time zone offset (use Z for UTC).")
    return parsed


def _scalar_sql(field: Scalar, path: AttrPath, op: str, value: Value, dialect: str) -> ColumnElement[bool]:
    expr = field.expr
    present = expr.isnot(None)
    if value is None:
        if op == "eq":
            return expr.is_(None)
        if op == "ne":
            return present
        raise invalid_filter(f"Only 'eq null' and 'ne null' compare with null ('{path} {op} null').")
    if field.type == "boolean":
        if not isinstance(value, bool):
            raise invalid_filter(f"'{path}' is a boolean; compare it with true or false.")
        if op not in ("eq", "ne"):
            raise invalid_filter(f"'{op}' does not apply to the boolean '{path}'.")
        matches = expr if value else not_(expr)
        if op == "eq":
            return and_(present, matches)
        return or_(not_(present), not_(matches))
    if field.type == "dateTime":
        if op in ("co", "sw", "ew"):
            raise invalid_filter(f"'{op}' does not apply to the dateTime '{path}'.")
        moment = _parse_datetime(value, path)
        ops = {"eq": expr == moment, "ne": expr != moment, "gt": expr > moment, "ge": expr >= moment}
        ops.update({"lt": expr < moment, "le": expr <= moment})
        return or_(not_(present), ops[op]) if op == "ne" else and_(present, ops[op])
    if not isinstance(value, str):
        raise invalid_filter(f"'{path}' is a string; compare it with a quoted value.")
    if op == "eq" and field.eq is not None:
        return field.eq(value)
    side = expr if field.case_exact else func.lower(expr)
    wanted = value if field.case_exact else value.lower()
    if op == "eq":
        return and_(present, side == wanted)
    if op == "ne":
        return or_(not_(present), side != wanted)
    if op in ("co", "sw", "ew"):
        pattern = _escape_like(wanted)
        pattern = {"co": f"%{pattern}%", "sw": f"{pattern}%", "ew": f"%{pattern}"}[op]
        return and_(present, side.like(pattern, escape="\\"))
    # Order by code point on every backend (PostgreSQL's default collation would order by locale rules).
    ordered = side.collate("C") if dialect == "postgresql" else side
    return and_(
        present,
        {"gt": ordered > wanted, "ge": ordered >= wanted, "lt": ordered < wanted, "le": ordered <= wanted}[
            op
        ],
    )


def to_sql(node: Node, resolve: FieldResolver, dialect: str) -> ColumnElement[bool]:
    """Compile a filter. Every predicate is two-valued (an absent attribute matches nothing, except
    ``ne``), so ``not`` means what it says even where SQL would see NULL."""
    if isinstance(node, And):
        return and_(to_sql(node.left, resolve, dialect), to_sql(node.right, resolve, dialect))
    if isinstance(node, Or):
        return or_(to_sql(node.left, resolve, dialect), to_sql(node.right, resolve, dialect))
    if isinstance(node, Not):
        return not_(to_sql(node.inner, resolve, dialect))
    field = resolve(
        AttrPath(node.path.schema, node.path.attr, None if isinstance(node, ValueFilter) else node.path.sub)
    )
    if isinstance(node, ValueFilter):
        if not isinstance(field, Multi):
            raise invalid_filter(f"'{node.path}' is not a multi-valued attribute; it takes no [filter].")
        multi = field

        def resolve_sub(path: AttrPath) -> Field:
            if path.schema is not None or path.sub is not None:
                raise invalid_filter(f"Inside '{node.path}[…]' name sub-attributes only, not '{path}'.")
            sub = multi.subs.get(path.attr.lower())
            if sub is None:
                raise invalid_filter(f"'{node.path}' has no filterable sub-attribute '{path.attr}'.")
            return sub

        return multi.exists_where(to_sql(node.inner, resolve_sub, dialect))
    if isinstance(field, Multi):
        sub_name = (node.path.sub or field.default_sub).lower()
        sub = field.subs.get(sub_name)
        if sub is None:
            raise invalid_filter(f"'{node.path}' cannot be filtered.")
        if isinstance(node, Present):
            return field.exists_where(sub.expr.isnot(None) if node.path.sub else true())
        return field.exists_where(_scalar_sql(sub, node.path, node.op, node.value, dialect))
    if isinstance(node, Present):
        return field.expr.isnot(None)
    return _scalar_sql(field, node.path, node.op, node.value, dialect)
