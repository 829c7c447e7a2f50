"""Property tests of the SCIM filter: generated filters, compiled to SQL by the server, select exactly the
users a plain Python reference evaluation of RFC 7644 §3.4.2.2 selects (on both backends); random strings
never cause a 500."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scim.support import ERROR, create_user, scim_client
from tests.support.server import TestServer

ALPHABET = "abAB_%. \\"
POOL = ["a", "b", "ab", "Ab", "a_b", "a%", "b.a", "ba b", "a\\b", "BA"]
STRING_ATTRS = ["userName", "displayName", "title", "nickName", "name.givenName", "externalId"]
CASE_EXACT = {"externalId"}
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ---------------------------------------------------------------- the filter model and its reference


@dataclass(frozen=True)
class Cmp:
    attr: str
    op: str
    value: Any


@dataclass(frozen=True)
class Pr:
    attr: str


@dataclass(frozen=True)
class Bin:
    op: str  # and / or
    left: Any
    right: Any


@dataclass(frozen=True)
class Neg:
    inner: Any


@dataclass(frozen=True)
class Emails:
    inner: Any  # over the sub-attributes "type" and "value"


Filter = Union[Cmp, Pr, Bin, Neg, Emails]  # noqa: UP007


def cased(word: str, rnd: random.Random) -> str:
    """Attribute names and operators are case-insensitive: vary their case."""
    return "".join(c.upper() if rnd.random() < 0.3 else c for c in word)


def render(node: Filter, rnd: random.Random) -> str:
    if isinstance(node, Cmp):
        return f"{cased(node.attr, rnd)} {cased(node.op, rnd)} {json.dumps(node.value)}"
    if isinstance(node, Pr):
        return f"{cased(node.attr, rnd)} pr"
    if isinstance(node, Bin):
        return f"({render(node.left, rnd)} {node.op} {render(node.right, rnd)})"
    if isinstance(node, Neg):
        return f"not ({render(node.inner, rnd)})"
    return f"emails[{render(node.inner, rnd)}]"


def get(doc: dict[str, Any], attr: str) -> Any:
    if attr == "name.givenName":
        return (doc.get("name") or {}).get("givenName")
    return doc.get(attr)


def compare(actual: Any, op: str, expected: Any, case_exact: bool) -> bool:
    if actual is None:
        return op == "ne"
    if isinstance(expected, bool) or isinstance(actual, bool):
        return (actual == expected) if op == "eq" else (actual != expected)
    a, e = (actual, expected) if case_exact else (actual.lower(), expected.lower())
    return {
        "eq": a == e,
        "ne": a != e,
        "co": e in a,
        "sw": a.startswith(e),
        "ew": a.endswith(e),
        "gt": a > e,
        "ge": a >= e,
        "lt": a < e,
        "le": a <= e,
    }[op]


def reference(node: Filter, doc: dict[str, Any]) -> bool:
    if isinstance(node, Bin):
        left, right = reference(node.left, doc), reference(node.right, doc)
        return (left and right) if node.op == "and" else (left or right)
    if isinstance(node, Neg):
        return not reference(node.inner, doc)
    if isinstance(node, Emails):
        return any(reference(node.inner, element) for element in doc.get("emails") or [])
    if node.attr.startswith("emails."):
        sub = node.attr.split(".", 1)[1]
        return any(reference(type(node)(sub, *([node.op, node.value] if isinstance(node, Cmp) else [])), e)
                   for e in doc.get("emails") or [])  # fmt: skip
    if isinstance(node, Pr):
        return get(doc, node.attr) is not None
    return compare(get(doc, node.attr), node.op, node.value, node.attr in CASE_EXACT)


# ---------------------------------------------------------------- strategies

values = st.one_of(st.sampled_from(POOL), st.text(alphabet=ALPHABET, min_size=0, max_size=4))
string_cmp = st.builds(
    Cmp, st.sampled_from([*STRING_ATTRS, "emails.value", "emails.type"]), st.sampled_from(OPS), values
)
bool_cmp = st.builds(Cmp, st.just("active"), st.sampled_from(["eq", "ne"]), st.booleans())
present = st.builds(Pr, st.sampled_from([*STRING_ATTRS, "active", "emails.value", "emails.type"]))
sub_leaf = st.one_of(
    st.builds(Cmp, st.sampled_from(["type", "value"]), st.sampled_from(OPS), values),
    st.builds(Pr, st.sampled_from(["type", "value"])),
)
sub_filter = st.recursive(
    sub_leaf,
    lambda inner: st.one_of(
        st.builds(Bin, st.sampled_from(["and", "or"]), inner, inner), st.builds(Neg, inner)
    ),
    max_leaves=3,
)
leaf = st.one_of(string_cmp, bool_cmp, present, st.builds(Emails, sub_filter))
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(Bin, st.sampled_from(["and", "or"]), inner, inner), st.builds(Neg, inner)
    ),
    max_leaves=5,
)


# ---------------------------------------------------------------- the directory the filters run on


@pytest.fixture(scope="module")
def directory(server: TestServer) -> Iterator[tuple[httpx.Client, list[dict[str, Any]]]]:
    rnd = random.Random(7)
    with scim_client(server.tenant()) as scim:
        for i in range(14):
            attrs: dict[str, Any] = {}
            for attr in ("displayName", "title", "nickName", "externalId"):
                if rnd.random() < 0.7:
                    attrs[attr] = rnd.choice(POOL) + ("" if rnd.random() < 0.5 else rnd.choice(POOL))
            if rnd.random() < 0.7:
                attrs["name"] = {"givenName": rnd.choice(POOL)}
            if rnd.random() < 0.8:
                attrs["active"] = rnd.random() < 0.5
            emails = []
            for j in range(rnd.randint(0, 2)):
                email: dict[str, Any] = {"value": f"{rnd.choice(POOL)}{j}@{rnd.choice(['x.test', 'y.test'])}"}
                if rnd.random() < 0.8:
                    email["type"] = rnd.choice(["work", "home", "a_b", "Ab"])
                emails.append(email)
            if emails:
                attrs["emails"] = emails
            name = rnd.choice(POOL).replace(" ", "") + f"{i}" + ("" if i % 3 else "@t.test")
            create_user(scim, name, **attrs)
        everyone = scim.get("/Users", params={"count": 1000}).json()["Resources"]
        assert len(everyone) == 14
        yield scim, everyone


@SETTINGS
@given(node=filters, seed=st.integers(0, 2**16))
def test_generated_filters_select_what_the_reference_selects(
    directory: tuple[httpx.Client, list[dict[str, Any]]], node: Filter, seed: int
) -> None:
    scim, everyone = directory
    text = render(node, random.Random(seed))
    response = scim.get("/Users", params={"filter": text, "count": 1000})
    assert response.status_code == 200, f"{text}: {response.text}"
    got = sorted(r["id"] for r in response.json()["Resources"])
    expected = sorted(u["id"] for u in everyone if reference(node, u))
    assert got == expected, text


@SETTINGS
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_random_strings_never_cause_a_server_error(
    directory: tuple[httpx.Client, list[dict[str, Any]]], text: str
) -> None:
    scim, _ = directory
    response = scim.get("/Users", params={"filter": text})
    assert response.status_code in (200, 400), f"{text!r}: {response.status_code} {response.text}"
    if response.status_code == 400:
        assert response.json()["schemas"] == [ERROR]


filter_words = st.lists(
    st.sampled_from(['userName', 'emails[', ']', '(', ')', 'and', 'or', 'not', 'eq', 'pr', 'gt', '"a"',
                     'true', 'null', '1.5', '.value', 'type',
                     'urn:ietf:params:scim:schemas:core:2.0:User:userName']),
    max_size=12,
)  # fmt: skip


@SETTINGS
@given(words=filter_words)
def test_near_miss_filters_never_cause_a_server_error(
    directory: tuple[httpx.Client, list[dict[str, Any]]], words: list[str]
) -> None:
    scim, _ = directory
    text = " ".join(words)
    response = scim.get("/Users", params={"filter": text})
    assert response.status_code in (200, 400), f"{text!r}: {response.status_code} {response.text}"
