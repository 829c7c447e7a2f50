"""The device-filter rule language of conditional access (the dynamic-membership rule syntax, restricted to
``device.*`` properties): a tokenizer and recursive-descent parser that compiles a rule into a predicate over
a device's attributes, and reports every error with its position in the rule.

Semantics (Entra, "Filter for devices"): string comparisons ignore case; ``-contains`` is a substring test on
strings and a whole-element test on collections (``physicalIds``, ``systemLabels``); for an unregistered
device every property is null, so positive operators (``-eq -startsWith -endsWith -contains -in``) are false
and negative ones (``-ne -notStartsWith -notEndsWith -notContains -notIn``) are true.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_RULE_LENGTH = 3072
MAX_DEPTH = 32

Predicate = Callable[[Mapping[str, Any] | None], bool]

_ALL_STRING_OPS = (
    "eq",
    "ne",
    "startswith",
    "notstartswith",
    "endswith",
    "notendswith",
    "contains",
    "notcontains",
    "in",
    "notin",
)
_EQ_OPS = ("eq", "ne")
_ID_OPS = ("eq", "ne", "in", "notin")
_COLLECTION_OPS = ("contains", "notcontains")

# property (lower case) -> (canonical name, kind, allowed operators)
PROPERTIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "deviceid": ("deviceId", "string", _ID_OPS),
    "displayname": ("displayName", "string", _ALL_STRING_OPS),
    "deviceownership": ("deviceOwnership", "string", _EQ_OPS),
    "enrollmentprofilename": ("enrollmentProfileName", "string", _ALL_STRING_OPS),
    "iscompliant": ("isCompliant", "boolean", _EQ_OPS),
    "manufacturer": ("manufacturer", "string", _ALL_STRING_OPS),
    "mdmappid": ("mdmAppId", "string", _ID_OPS),
    "model": ("model", "string", _ALL_STRING_OPS),
    "operatingsystem": ("operatingSystem", "string", _ALL_STRING_OPS),
    "operatingsystemversion": ("operatingSystemVersion", "string", _ALL_STRING_OPS),
    "physicalids": ("physicalIds", "collection", _COLLECTION_OPS),
    "profiletype": ("profileType", "string", _EQ_OPS),
    "systemlabels": ("systemLabels", "collection", _COLLECTION_OPS),
    "trusttype": ("trustType", "string", _EQ_OPS),
    **{f"extensionattribute{i}": (f"extensionAttribute{i}", "string", _ALL_STRING_OPS) for i in range(1, 16)},
}

OPERATOR_NAMES = {
    "eq": "-eq",
    "ne": "-ne",
    "startswith": "-startsWith",
    "notstartswith": "-notStartsWith",
    "endswith": "-endsWith",
    "notendswith": "-notEndsWith",
    "contains": "-contains",
    "notcontains": "-notContains",
    "in": "-in",
    "notin": "-notIn",
}
NEGATIVE = frozenset({"ne", "notstartswith", "notendswith", "notcontains", "notin"})


class DeviceFilterError(ValueError):
    """A rule that does not parse; ``position`` is the 1-based character position of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # word | op | string | lparen | rparen | lbracket | rbracket | comma | end
    text: str
    position: int  # 1-based


def tokenize(rule: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(rule)
    while i < n:
        ch = rule[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in "()[],":
            kind = {"(": "lparen", ")": "rparen", "[": "lbracket", "]": "rbracket", ",": "comma"}[ch]
            tokens.append(Token(kind, ch, start + 1))
            i += 1
        elif ch in "\"'":
            quote, i, out = ch, i + 1, []
            while True:
                if i >= n:
                    raise DeviceFilterError("Unterminated string literal", start + 1)
                c = rule[i]
                if c == "`" and i + 1 < n:  # the rule syntax escapes a quote with a backtick
                    out.append(rule[i + 1])
                    i += 2
                    continue
                if c == quote:
                    i += 1
                    break
                out.append(c)
                i += 1
            tokens.append(Token("string", "".join(out), start + 1))
        elif ch == "-":
            i += 1
            while i < n and rule[i].isalpha():
                i += 1
            if i == start + 1:
                raise DeviceFilterError("Expected an operator name after '-'", start + 1)
            tokens.append(Token("op", rule[start + 1 : i], start + 1))
        elif ch.isalnum() or ch == "_":
            while i < n and (rule[i].isalnum() or rule[i] in "._"):
                i += 1
            tokens.append(Token("word", rule[start:i], start + 1))
        else:
            raise DeviceFilterError(f"Unexpected character '{ch}'", start + 1)
    tokens.append(Token("end", "", n + 1))
    return tokens


class _Parser:
    def __init__(self, rule: str) -> None:
        self.tokens = tokenize(rule)
        self.pos = 0
        self.attributes: set[str] = set()

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _is_keyword(self, tok: Token, word: str) -> bool:
        return tok.kind in ("op", "word") and tok.text.lower() == word

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            raise DeviceFilterError("The rule is empty", 1)
        pred = self.parse_or(0)
        tok = self.peek()
        if tok.kind != "end":
            raise DeviceFilterError(f"Unexpected '{tok.text}'; expected -and, -or or the end", tok.position)
        return pred

    def parse_or(self, depth: int) -> Predicate:
        parts = [self.parse_and(depth)]
        while self._is_keyword(self.peek(), "or"):
            self.take()
            parts.append(self.parse_and(depth))
        if len(parts) == 1:
            return parts[0]
        items = tuple(parts)
        return lambda d: any(p(d) for p in items)

    def parse_and(self, depth: int) -> Predicate:
        parts = [self.parse_unary(depth)]
        while self._is_keyword(self.peek(), "and"):
            self.take()
            parts.append(self.parse_unary(depth))
        if len(parts) == 1:
            return parts[0]
        items = tuple(parts)
        return lambda d: all(p(d) for p in items)

    def parse_unary(self, depth: int) -> Predicate:
        tok = self.peek()
        if depth > MAX_DEPTH:
            raise DeviceFilterError(f"The rule nests deeper than {MAX_DEPTH} levels", tok.position)
        if self._is_keyword(tok, "not"):
            self.take()
            inner = self.parse_unary(depth + 1)
            return lambda d: not inner(d)
        if tok.kind == "lparen":
            self.take()
            inner = self.parse_or(depth + 1)
            close = self.take()
            if close.kind != "rparen":
                raise DeviceFilterError(f"Expected ')' but found '{close.text or 'the end'}'", close.position)
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        tok = self.take()
        if tok.kind != "word":
            raise DeviceFilterError(
                f"Expected a device property such as device.trustType but found '{tok.text or 'the end'}'",
                tok.position,
            )
        head, _, prop = tok.text.partition(".")
        if head.lower() != "device" or not prop:
            raise DeviceFilterError(f"'{tok.text}' is not a device property (device.<name>)", tok.position)
        spec = PROPERTIES.get(prop.lower())
        if spec is None:
            raise DeviceFilterError(f"'{prop}' is not a supported device property", tok.position + 7)
        name, kind, allowed = spec
        op_tok = self.take()
        if op_tok.kind != "op":
            raise DeviceFilterError(
                f"Expected an operator such as -eq but found '{op_tok.text or 'the end'}'", op_tok.position
            )
        op = op_tok.text.lower()
        if op not in OPERATOR_NAMES:
            raise DeviceFilterError(f"'-{op_tok.text}' is not a supported operator", op_tok.position)
        if op not in allowed:
            names = ", ".join(OPERATOR_NAMES[o] for o in allowed)
            raise DeviceFilterError(
                f"The operator {OPERATOR_NAMES[op]} is not supported for device.{name} (use {names})",
                op_tok.position,
            )
        value: str | tuple[str, ...]
        if op in ("in", "notin"):
            value = self.parse_list()
        else:
            value = self.parse_value(kind)
        self.attributes.add(name)
        return _comparison(name.lower(), kind, op, value)

    def parse_value(self, kind: str) -> str:
        tok = self.take()
        if tok.kind == "string":
            value = tok.text
        elif tok.kind == "word" and tok.text.lower() in ("true", "false", "null"):
            value = tok.text
        else:
            raise DeviceFilterError(
                f"Expected a quoted value but found '{tok.text or 'the end'}'", tok.position
            )
        if kind == "boolean" and value.lower() not in ("true", "false"):
            raise DeviceFilterError(f"Expected True or False but found '{value}'", tok.position)
        return value

    def parse_list(self) -> tuple[str, ...]:
        open_ = self.take()
        if open_.kind != "lbracket":
            raise DeviceFilterError(
                f"Expected '[' to start a list but found '{open_.text or 'the end'}'", open_.position
            )
        values: list[str] = []
        while True:
            tok = self.take()
            if tok.kind != "string":
                raise DeviceFilterError(
                    f"Expected a quoted value in the list but found '{tok.text or 'the end'}'", tok.position
                )
            values.append(tok.text)
            sep = self.take()
            if sep.kind == "rbracket":
                return tuple(values)
            if sep.kind != "comma":
                raise DeviceFilterError(
                    f"Expected ',' or ']' but found '{sep.text or 'the end'}'", sep.position
                )


def _comparison(key: str, kind: str, op: str, value: str | tuple[str, ...]) -> Predicate:
    negative = op in NEGATIVE
    base = op[3:] if negative else op
    if kind == "collection":
        wanted = str(value).lower()

        def test(actual: Any) -> bool:
            return any(str(v).lower() == wanted for v in actual)

    elif base == "in":
        options = frozenset(v.lower() for v in value)

        def test(actual: Any) -> bool:
            return _text(actual) in options

    else:
        target = str(value).lower()
        if base == "eq":

            def test(actual: Any) -> bool:
                return _text(actual) == target

        elif base == "startswith":

            def test(actual: Any) -> bool:
                return _text(actual).startswith(target)

        elif base == "endswith":

            def test(actual: Any) -> bool:
                return _text(actual).endswith(target)

        else:  # contains

            def test(actual: Any) -> bool:
                return target in _text(actual)

    def predicate(device: Mapping[str, Any] | None) -> bool:
        actual = None if device is None else device.get(key)
        if actual is None:  # unregistered device or unset property: null
            return negative
        return (not test(actual)) if negative else test(actual)

    return predicate


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


@dataclass(frozen=True)
class DeviceFilter:
    rule: str
    predicate: Predicate
    attributes: frozenset[str]

    def matches(self, device: Mapping[str, Any] | None) -> bool:
        """``device``: attribute name (lower case) -> value, or None for an unregistered device."""
        return self.predicate(device)


def parse_rule(rule: str) -> DeviceFilter:
    if not isinstance(rule, str):
        raise DeviceFilterError("The rule must be a string", 1)
    if len(rule) > MAX_RULE_LENGTH:
        raise DeviceFilterError(f"The rule is longer than {MAX_RULE_LENGTH} characters", MAX_RULE_LENGTH + 1)
    parser = _Parser(rule)
    predicate = parser.parse()
    return DeviceFilter(rule, predicate, frozenset(parser.attributes))
