"""Bad input to the Graph face: malformed JSON, non-object bodies, unknown properties, wrong types, overlong
values, oversize bodies (declared and chunked), invalid OData options, invalid UPNs and nicknames,
duplicates, repeated members, membership cycles and invalid references. Each answer is a 4xx Graph error
whose message names the problem, and nothing is written: the tenant's rows in every table are unchanged.
Random JSON bodies never produce a 5xx."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.server import TenantHandle, TestServer
from trustplane.graph.properties import GROUP, USER

EVENTUAL = {"ConsistencyLevel": "eventual"}
COUNTED = (
    "users",
    "groups",
    "memberships",
    "directory_values",
    "events",
    "jobs",
    "audit_log",
    "ca_policies",
    "ca_named_locations",
    "risky_users",
    "risky_user_history",
    "risk_detections",
)
COMPARED = {
    "users": "SELECT * FROM users WHERE tenant_id = :t ORDER BY id",
    "groups": "SELECT * FROM groups WHERE tenant_id = :t ORDER BY id",
    "memberships": "SELECT group_id, member_id FROM memberships WHERE tenant_id = :t ORDER BY 1, 2",
    "values": "SELECT object_id, attr, value FROM directory_values WHERE tenant_id = :t ORDER BY 1, 2, 3",
    "policies": "SELECT id, body FROM ca_policies WHERE tenant_id = :t ORDER BY id",
    "locations": "SELECT id, body FROM ca_named_locations WHERE tenant_id = :t ORDER BY id",
    "risky users": "SELECT * FROM risky_users WHERE tenant_id = :t ORDER BY id",
}
PASSWORD = "Correct-Horse-Battery-1"
# The env's app may call every Graph endpoint that takes a body.
PERMISSIONS = (
    "Directory.ReadWrite.All",
    "Policy.ReadWrite.ConditionalAccess",
    "IdentityRiskyUser.ReadWrite.All",
)
CA = "/v1.0/identity/conditionalAccess"
RISKY = "/v1.0/identityProtection/riskyUsers"


@dataclass
class Env:
    """One tenant per backend: users u1 (in g1) and u2; groups g1 in g2 in g3."""

    server: TestServer
    tenant: TenantHandle
    client: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)
    upns: dict[str, str] = field(default_factory=dict)

    def ref(self, key: str) -> str:
        return f"{self.server.url}/v1.0/directoryObjects/{self.ids[key]}"

    def path(self, template: str) -> str:
        return template.format(**self.ids)


def new_user(env: Env, alias: str = "newcomer") -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "displayName": "New Comer",
        "mailNickname": alias,
        "userPrincipalName": f"{alias}@{env.tenant.domain}",
        "passwordProfile": {"password": PASSWORD},
    }


def new_group(env: Env, alias: str = "newgroup") -> dict[str, Any]:
    return {"displayName": "New Group", "mailNickname": alias, "mailEnabled": False, "securityEnabled": True}


def new_policy(env: Env) -> dict[str, Any]:
    return {
        "displayName": "Require MFA",
        "state": "disabled",
        "conditions": {
            "users": {"includeUsers": [env.ids["u1"]]},
            "applications": {"includeApplications": ["All"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


def new_location(env: Env) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": "Head office",
        "isTrusted": True,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
    }


def what_if(env: Env) -> dict[str, Any]:
    return {
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": env.ids["u1"]},
        "signInContext": {
            "@odata.type": "#microsoft.graph.applicationContext",
            "includeApplications": ["All"],
        },
        "signInConditions": {},
    }


def build_env(server: TestServer, tenant: TenantHandle, client: httpx.Client) -> Env:
    env = Env(server, tenant, client)
    for key in ("u1", "u2"):
        r = client.post("/v1.0/users", json=new_user(env, key))
        assert r.status_code == 201, r.text
        env.ids[key], env.upns[key] = r.json()["id"], r.json()["userPrincipalName"]
    for key in ("g1", "g2", "g3"):
        r = client.post("/v1.0/groups", json=new_group(env, key))
        assert r.status_code == 201, r.text
        env.ids[key] = r.json()["id"]
    for group, member in (("g1", "u1"), ("g2", "g1"), ("g3", "g2")):
        r = client.post(f"/v1.0/groups/{env.ids[group]}/members/$ref", json={"@odata.id": env.ref(member)})
        assert r.status_code == 204, r.text
    for key, path, body in (("p1", "policies", new_policy), ("l1", "namedLocations", new_location)):
        r = client.post(f"{CA}/{path}", json=body(env))
        assert r.status_code == 201, r.text
        env.ids[key] = r.json()["id"]
    server.wait_for_jobs()
    return env


@pytest.fixture(scope="module")
def env(server: TestServer) -> Iterator[Env]:
    """Shared by every case: each case asserts it wrote nothing, so the next starts from the same state."""
    tenant = server.tenant(*PERMISSIONS)
    with tenant.client() as client:
        yield build_env(server, tenant, client)


def snapshot(server: TestServer, tenant_id: str) -> dict[str, Any]:
    """The tenant's row count in every table the Graph face writes, and the directory rows themselves."""
    server.wait_for_jobs()

    async def take() -> dict[str, Any]:
        snap: dict[str, Any] = {}
        async with server.db.read_session() as session:
            for table in COUNTED:
                query = sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t")
                snap[table] = (await session.execute(query, {"t": tenant_id})).scalar()
            for name, query_text in COMPARED.items():
                rows = (await session.execute(sa.text(query_text), {"t": tenant_id})).all()
                snap[f"{name} rows"] = [tuple(r) for r in rows]
        return snap

    return server.run(take())


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Raw:
    """A body sent as these exact bytes (``chunked``: streamed without a Content-Length)."""

    data: bytes
    chunked: bool = False


Body = Callable[[Env], Any] | Raw | None


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # formatted with the env's ids: {u1}, {g1}, …
    body: Body
    status: int
    says: str  # the error message names the problem: this text appears in it (case and '_' ignored)
    params: dict[str, str] | tuple[tuple[str, str], ...] | None = None
    headers: dict[str, str] | None = None


GET_GROUPS = {"securityEnabledOnly": False}


def check_body(env: Env) -> dict[str, Any]:
    return {"groupIds": [env.ids["g2"], env.ids["g3"]]}


# Each endpoint that takes a JSON body, with a body it accepts; each generic case breaks it in one way.
ENDPOINTS: dict[str, tuple[str, str, Callable[[Env], dict[str, Any]]]] = {
    "create-user": ("POST", "/v1.0/users", new_user),
    "update-user": ("PATCH", "/v1.0/users/{u2}", lambda e: {"displayName": "Renamed"}),
    "create-group": ("POST", "/v1.0/groups", new_group),
    "update-group": ("PATCH", "/v1.0/groups/{g1}", lambda e: {"description": "Changed"}),
    "add-member": ("POST", "/v1.0/groups/{g1}/members/$ref", lambda e: {"@odata.id": e.ref("u2")}),
    "user-get-member-groups": ("POST", "/v1.0/users/{u1}/getMemberGroups", lambda e: GET_GROUPS),
    "user-check-member-groups": ("POST", "/v1.0/users/{u1}/checkMemberGroups", check_body),
    "group-get-member-groups": ("POST", "/v1.0/groups/{g1}/getMemberGroups", lambda e: GET_GROUPS),
    "group-check-member-groups": ("POST", "/v1.0/groups/{g1}/checkMemberGroups", check_body),
    "get-by-ids": ("POST", "/v1.0/directoryObjects/getByIds", lambda e: {"ids": [e.ids["u1"], e.ids["g1"]]}),
    "create-policy": ("POST", f"{CA}/policies", new_policy),
    "update-policy": ("PATCH", CA + "/policies/{p1}", lambda e: {"displayName": "Renamed"}),
    "create-named-location": ("POST", f"{CA}/namedLocations", new_location),
    "update-named-location": (
        "PATCH",
        CA + "/namedLocations/{l1}",
        lambda e: {"@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "Renamed"},
    ),
    "what-if": ("POST", f"{CA}/evaluate", what_if),
    "create-from-templates": ("POST", f"{CA}/templates/createPolicies", lambda e: {}),
    "confirm-compromised": ("POST", f"{RISKY}/confirmCompromised", lambda e: {"userIds": [e.ids["u2"]]}),
    "confirm-safe": ("POST", f"{RISKY}/confirmSafe", lambda e: {"userIds": [e.ids["u2"]]}),
    "dismiss-risk": ("POST", f"{RISKY}/dismiss", lambda e: {"userIds": [e.ids["u2"]]}),
}

# Actions that take no parameters (Graph clients send no body): an empty body or {} is the valid call.
NO_PARAMETERS: dict[str, tuple[str, str]] = {
    "revoke-sign-in-sessions": ("POST", "/v1.0/users/{u2}/revokeSignInSessions"),
}

OVERSIZE = 1_048_576 + 1024  # just past the default settings.max_body_bytes


def with_nested(valid: Callable[[Env], dict[str, Any]], depth: int) -> Callable[[Env], bytes]:
    """The valid body plus an unknown property holding lists nested ``depth`` deep, as raw JSON bytes."""

    def body(env: Env) -> bytes:
        deep = "[" * depth + '"bottom"' + "]" * depth
        fields = valid(env)
        return (json.dumps(fields)[:-1] + (", " if fields else "") + f'"bogusProperty": {deep}}}').encode()

    return body


def oversize_body() -> bytes:
    return b'{"displayName": "' + b"x" * OVERSIZE + b'"}'


GENERIC: list[tuple[str, Callable[[Callable[[Env], dict[str, Any]]], Body], int, str]] = [
    ("malformed-json", lambda valid: Raw(b'{"displayName": "unterminated'), 400, "not valid JSON"),
    ("trailing-garbage", lambda valid: Raw(b"{} {}"), 400, "not valid JSON"),
    ("json-array", lambda valid: Raw(b'[{"displayName": "x"}]'), 400, "must be a JSON object"),
    ("json-string", lambda valid: Raw(b'"displayName"'), 400, "must be a JSON object"),
    ("json-null", lambda valid: Raw(b"null"), 400, "must be a JSON object"),
    ("empty-body", lambda valid: Raw(b""), 400, "empty"),
    ("unknown-property", lambda valid: lambda e: {**valid(e), "bogusProperty": 1}, 400, "bogusProperty"),
    ("nul-in-property-name", lambda valid: lambda e: {**valid(e), "bad\u0000name": 1}, 400, "NUL character"),
    ("deep-nesting", lambda valid: with_nested(valid, 1000), 400, "bogusProperty"),
    ("too-deep-nesting", lambda valid: with_nested(valid, 5000), 400, "not valid JSON"),
    ("oversize-declared", lambda valid: Raw(oversize_body()), 413, "larger than the limit"),
    ("oversize-chunked", lambda valid: Raw(oversize_body(), chunked=True), 413, "larger than the limit"),
]


def generic_cases() -> list[Case]:
    return [
        Case(f"{endpoint}-{name}", method, path, make(valid), status, says)
        for endpoint, (method, path, valid) in ENDPOINTS.items()
        for name, make, status, says in GENERIC
    ]


def no_parameter_cases() -> list[Case]:
    broken: list[tuple[str, Body, int, str]] = [
        ("malformed-json", Raw(b'{"reason": "unterminated'), 400, "not valid JSON"),
        ("json-array", Raw(b"[]"), 400, "must be a JSON object"),
        ("a-parameter", const({"reason": "compromised"}), 400, "takes no parameters"),
        ("nul-in-property-name", const({"bad\u0000name": 1}), 400, "NUL character"),
        ("oversize-declared", Raw(oversize_body()), 413, "larger than the limit"),
        ("oversize-chunked", Raw(oversize_body(), chunked=True), 413, "larger than the limit"),
    ]
    return [
        Case(f"{action}-{name}", method, path, body, status, says)
        for action, (method, path) in NO_PARAMETERS.items()
        for name, body, status, says in broken
    ]


def user_cases() -> list[Case]:
    """Bad user properties, on create and on update (``with_``: the valid body plus these properties)."""
    long_256 = "x" * 257
    shared: list[tuple[str, dict[str, Any], str]] = [
        ("bool-as-string", {"accountEnabled": "true"}, "accountEnabled"),
        ("bool-as-number", {"accountEnabled": 1}, "boolean"),
        ("null-for-bool", {"accountEnabled": None}, "cannot be null"),
        ("number-for-string", {"displayName": 42}, "expects a string"),
        ("list-for-string", {"givenName": ["Ada"]}, "givenName"),
        ("object-for-collection", {"businessPhones": {"work": "123"}}, "collection"),
        ("numbers-in-collection", {"otherMails": [1, 2]}, "collection of strings"),
        ("null-for-collection", {"businessPhones": None}, "cannot be null"),
        ("overlong-display-name", {"displayName": long_256}, "longer than 256"),
        ("overlong-given-name", {"givenName": "x" * 65}, "longer than 64"),
        ("overlong-employee-id", {"employeeId": "x" * 17}, "longer than 16"),
        ("overlong-collection-item", {"otherMails": ["x" * 1025]}, "1024"),
        ("blank-display-name", {"displayName": "   "}, "displayName"),
        ("upn-without-at", {"userPrincipalName": "no-at-sign"}, "userPrincipalName"),
        ("upn-with-space", {"userPrincipalName": "two words@example.com"}, "userPrincipalName"),
        ("upn-two-ats", {"userPrincipalName": "a@b@example.com"}, "userPrincipalName"),
        ("upn-empty-domain", {"userPrincipalName": "alias@"}, "userPrincipalName"),
        ("nickname-with-space", {"mailNickname": "has space"}, "mailNickname"),
        ("nickname-with-at", {"mailNickname": "a@b"}, "mailNickname"),
        ("nickname-overlong", {"mailNickname": "n" * 65}, "mailNickname"),
        ("read-only-id", {"id": "00000000-0000-0000-0000-000000000001"}, "read-only"),
        ("read-only-created", {"createdDateTime": "2020-01-01T00:00:00Z"}, "read-only"),
        ("read-only-proxy-addresses", {"proxyAddresses": ["SMTP:x@example.com"]}, "read-only"),
        ("password-profile-not-object", {"passwordProfile": "secret"}, "passwordProfile"),
        ("password-too-short", {"passwordProfile": {"password": "short"}}, "at least 8"),
        ("password-profile-unknown", {"passwordProfile": {"password": PASSWORD, "pin": "1"}}, "pin"),
        (
            "force-change-not-bool",
            {"passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": "y"}},
            "forceChangePasswordNextSignIn",
        ),
        ("nul-in-display-name", {"displayName": "a\u0000b"}, "NUL character"),
    ]
    cases = []
    for name, extra, says in shared:
        cases.append(Case(f"create-user-{name}", "POST", "/v1.0/users", with_(new_user, extra), 400, says))
        cases.append(Case(f"update-user-{name}", "PATCH", "/v1.0/users/{u2}", const(extra), 400, says))
    for prop in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"):
        cases.append(
            Case(f"create-user-missing-{prop}", "POST", "/v1.0/users", without(new_user, prop), 400, prop)
        )
    cases += [
        Case(
            "create-user-duplicate-upn-other-case",
            "POST",
            "/v1.0/users",
            lambda e: {**new_user(e), "userPrincipalName": e.upns["u1"].upper()},
            400,
            "already exists",
        ),
        Case(
            "update-user-duplicate-upn-other-case",
            "PATCH",
            "/v1.0/users/{u2}",
            lambda e: {"userPrincipalName": e.upns["u1"].swapcase()},
            400,
            "already exists",
        ),
    ]
    return cases


def group_cases() -> list[Case]:
    shared: list[tuple[str, dict[str, Any], str]] = [
        ("bool-as-string", {"securityEnabled": "yes"}, "securityEnabled"),
        ("null-for-bool", {"mailEnabled": None}, "cannot be null"),
        ("number-for-string", {"displayName": 7}, "expects a string"),
        ("object-for-collection", {"groupTypes": {"kind": "Unified"}}, "collection"),
        ("unknown-group-type", {"groupTypes": ["Secret"]}, "groupTypes"),
        ("bad-visibility", {"visibility": "Invisible"}, "visibility"),
        ("overlong-description", {"description": "d" * 1025}, "longer than 1024"),
        ("overlong-display-name", {"displayName": "g" * 257}, "longer than 256"),
        ("nickname-with-space", {"mailNickname": "bad nick"}, "mailNickname"),
        ("read-only-created", {"createdDateTime": "2020-01-01T00:00:00Z"}, "read-only"),
        ("bind-not-a-list", {"members@odata.bind": "not a list"}, "members@odata.bind"),
        ("bind-not-a-reference", {"members@odata.bind": ["not a url"]}, "not a valid reference"),
        ("bind-not-a-string", {"members@odata.bind": [42]}, "reference"),
        ("nul-in-display-name", {"displayName": "a\u0000b"}, "NUL character"),
    ]
    cases = []
    for name, extra, says in shared:
        cases.append(Case(f"create-group-{name}", "POST", "/v1.0/groups", with_(new_group, extra), 400, says))
        cases.append(Case(f"update-group-{name}", "PATCH", "/v1.0/groups/{g1}", const(extra), 400, says))
    for prop in ("displayName", "mailNickname", "mailEnabled", "securityEnabled"):
        cases.append(
            Case(f"create-group-missing-{prop}", "POST", "/v1.0/groups", without(new_group, prop), 400, prop)
        )
    unknown = "00000000-0000-4000-8000-000000000000"
    cases += [
        # The group and the members are one change: a failing member leaves no group behind.
        Case(
            "create-group-with-same-member-twice",
            "POST",
            "/v1.0/groups",
            lambda e: {**new_group(e), "members@odata.bind": [e.ref("u1"), e.ref("u1")]},
            400,
            "already exist",
        ),
        Case(
            "create-group-with-absent-member",
            "POST",
            "/v1.0/groups",
            lambda e: {
                **new_group(e),
                "members@odata.bind": [f"{e.server.url}/v1.0/directoryObjects/{unknown}"],
            },
            404,
            unknown,
        ),
        # An update and its member binds are one change too: the rename is not applied either.
        Case(
            "update-group-bind-existing-member",
            "PATCH",
            "/v1.0/groups/{g1}",
            lambda e: {"displayName": "Renamed", "members@odata.bind": [e.ref("u1")]},
            400,
            "already exist",
        ),
        Case(
            "update-group-bind-closes-cycle",
            "PATCH",
            "/v1.0/groups/{g1}",
            lambda e: {"displayName": "Renamed", "members@odata.bind": [e.ref("g3")]},
            400,
            "cycle",
        ),
    ]
    return cases


def member_cases() -> list[Case]:
    add = "/v1.0/groups/{g1}/members/$ref"
    unknown = "00000000-0000-4000-8000-000000000000"
    refs: list[tuple[str, Body, int, str]] = [
        ("missing-odata-id", const({}), 400, "reference"),
        ("odata-id-number", const({"@odata.id": 42}), 400, "reference"),
        ("odata-id-null", const({"@odata.id": None}), 400, "reference"),
        ("odata-id-empty", const({"@odata.id": ""}), 400, "reference"),
        ("odata-id-not-a-url", const({"@odata.id": "not a url"}), 400, "not a valid reference"),
        (
            "odata-id-not-a-uuid",
            lambda e: {"@odata.id": f"{e.server.url}/v1.0/directoryObjects/abc"},
            400,
            "not a valid reference",
        ),
        ("odata-id-list", lambda e: {"@odata.id": [e.ref("u2")]}, 400, "reference"),
        (
            "odata-id-absent-object",
            const({"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{unknown}"}),
            404,
            unknown,
        ),
        ("member-twice", lambda e: {"@odata.id": e.ref("u1")}, 400, "already exist"),
        ("cycle-two-groups", lambda e: {"@odata.id": e.ref("g2")}, 400, "cycle"),
        ("cycle-self", lambda e: {"@odata.id": e.ref("g1")}, 400, "cycle"),
        ("cycle-three-groups", lambda e: {"@odata.id": e.ref("g3")}, 400, "cycle"),
    ]
    cases = [Case(f"add-member-{name}", "POST", add, body, status, says) for name, body, status, says in refs]
    cases += [
        Case(
            "add-member-to-absent-group",
            "POST",
            f"/v1.0/groups/{unknown}/members/$ref",
            lambda e: {"@odata.id": e.ref("u2")},
            404,
            unknown,
        ),
        Case(
            "remove-member-not-a-member",
            "DELETE",
            "/v1.0/groups/{g1}/members/{u2}/$ref",
            None,
            404,
            "not a member",
        ),
        Case("remove-member-not-a-uuid", "DELETE", "/v1.0/groups/{g1}/members/abc/$ref", None, 404, "abc"),
    ]
    get_groups = "/v1.0/users/{u1}/getMemberGroups"
    check_groups = "/v1.0/users/{u1}/checkMemberGroups"
    cases += [
        Case("get-member-groups-missing-flag", "POST", get_groups, const({}), 400, "securityEnabledOnly"),
        Case(
            "get-member-groups-flag-as-string",
            "POST",
            get_groups,
            const({"securityEnabledOnly": "true"}),
            400,
            "securityEnabledOnly",
        ),
        Case(
            "get-member-groups-flag-null",
            "POST",
            get_groups,
            const({"securityEnabledOnly": None}),
            400,
            "securityEnabledOnly",
        ),
        Case("check-member-groups-missing-ids", "POST", check_groups, const({}), 400, "groupIds"),
        Case(
            "check-member-groups-ids-string", "POST", check_groups, const({"groupIds": "g1"}), 400, "groupIds"
        ),
        Case(
            "check-member-groups-ids-numbers",
            "POST",
            check_groups,
            const({"groupIds": [1, 2]}),
            400,
            "groupIds",
        ),
        Case(
            "check-member-groups-ids-object",
            "POST",
            check_groups,
            const({"groupIds": {"id": "x"}}),
            400,
            "groupIds",
        ),
        Case(
            "check-member-groups-too-many",
            "POST",
            check_groups,
            const({"groupIds": [unknown] * 21}),
            400,
            "at most 20",
        ),
    ]
    return cases


def skiptoken(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def query_cases() -> list[Case]:
    bad: list[tuple[str, dict[str, str], dict[str, str] | None, str]] = [
        ("filter-incomplete", {"$filter": "displayName eq"}, None, "filter"),
        ("filter-unknown-property", {"$filter": "shoeSize eq 'x'"}, None, "shoeSize"),
        ("filter-unterminated-string", {"$filter": "displayName eq 'open"}, None, "filter"),
        ("filter-wrong-literal-type", {"$filter": "displayName eq true"}, None, "filter"),
        ("filter-unknown-function", {"$filter": "shout(displayName)"}, None, "filter"),
        ("filter-nul", {"$filter": "displayName eq 'a\u0000b'"}, None, "NUL character"),
        ("orderby-unknown-property", {"$orderby": "shoeSize"}, None, "$orderby"),
        ("orderby-bad-direction", {"$orderby": "displayName sideways"}, None, "$orderby"),
        ("select-unknown-property", {"$select": "shoeSize"}, None, "$select"),
        ("top-negative", {"$top": "-1"}, None, "$top"),
        ("top-not-a-number", {"$top": "ten"}, None, "$top"),
        ("top-too-large", {"$top": "100000"}, None, "$top"),
        ("skiptoken-garbage", {"$skiptoken": "!!not-base64!!"}, None, "$skiptoken"),
        ("skiptoken-wrong-shape", {"$skiptoken": skiptoken(["a", "b", "c"])}, None, "$skiptoken"),
        ("skiptoken-wrong-type", {"$skiptoken": skiptoken([42])}, None, "$skiptoken"),
        ("skiptoken-nul", {"$skiptoken": skiptoken(["\u0000"])}, None, "$skiptoken"),
        ("expand-unsupported", {"$expand": "memberOf"}, None, "$expand"),
        ("skip-unsupported", {"$skip": "10"}, None, "$skip"),
        ("unknown-option", {"$shoeSize": "10"}, None, "$shoeSize"),
        ("count-not-boolean", {"$count": "maybe"}, EVENTUAL, "$count"),
        ("count-without-consistency", {"$count": "true"}, None, "ConsistencyLevel"),
        ("search-without-consistency", {"$search": '"displayName:x"'}, None, "ConsistencyLevel"),
    ]
    cases = [
        Case(f"{name}-on-{collection}", "GET", f"/v1.0/{collection}", None, 400, says, params, headers)
        for collection in ("users", "groups")
        for name, params, headers, says in bad
    ]
    cases += [
        Case(
            "select-unknown-on-one-user",
            "GET",
            "/v1.0/users/{u1}",
            None,
            400,
            "$select",
            {"$select": "shoeSize"},
        ),
        Case(
            "filter-on-members-unsupported",
            "GET",
            "/v1.0/groups/{g1}/members",
            None,
            400,
            "$filter",
            {"$filter": "displayName eq 'x'"},
        ),
        Case(
            "top-duplicated",
            "GET",
            "/v1.0/users",
            None,
            400,
            "more than once",
            (("$top", "1"), ("$top", "2")),
        ),
        Case("nul-in-user-key", "GET", "/v1.0/users/a%00b@example.com", None, 400, "NUL character"),
        Case("count-without-consistency-path", "GET", "/v1.0/users/$count", None, 400, "ConsistencyLevel"),
    ]
    return cases


def const(value: dict[str, Any]) -> Callable[[Env], dict[str, Any]]:
    return lambda e: value


def with_(valid: Callable[[Env], dict[str, Any]], extra: dict[str, Any]) -> Callable[[Env], dict[str, Any]]:
    return lambda e: {**valid(e), **extra}


def without(valid: Callable[[Env], dict[str, Any]], prop: str) -> Callable[[Env], dict[str, Any]]:
    return lambda e: {k: v for k, v in valid(e).items() if k != prop}


CASES = generic_cases() + no_parameter_cases() + user_cases() + group_cases() + member_cases() + query_cases()


def send(env: Env, case: Case) -> httpx.Response:
    url = env.path(case.path)
    headers = dict(case.headers or {})
    params = case.params
    if isinstance(case.body, Raw):
        headers["Content-Type"] = "application/json"
        data = case.body.data
        content: Any = (
            iter([data[i : i + 65536] for i in range(0, len(data), 65536)]) if case.body.chunked else data
        )
        return env.client.request(case.method, url, content=content, headers=headers, params=params)
    if case.body is None:
        return env.client.request(case.method, url, headers=headers, params=params)
    body = case.body(env)
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        return env.client.request(case.method, url, content=body, headers=headers, params=params)
    return env.client.request(case.method, url, json=body, headers=headers, params=params)


def normalised(text: str) -> str:
    return text.lower().replace("_", "")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_graph_error_and_writes_nothing(server: TestServer, env: Env, case: Case) -> None:
    before = snapshot(server, env.tenant.tenant_id)
    response = send(env, case)
    assert response.status_code == case.status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "innerError"}
    assert error["code"] and isinstance(error["code"], str)
    assert normalised(case.says) in normalised(error["message"]), error["message"]
    assert snapshot(server, env.tenant.tenant_id) == before


def test_each_endpoint_accepts_its_valid_body(server: TestServer) -> None:
    """The control for the generic cases: the unbroken bodies succeed, so each refusal above is caused by
    the one thing the case broke."""
    tenant = server.tenant(*PERMISSIONS)
    with tenant.client() as client:
        env = build_env(server, tenant, client)
        for name, (method, path, valid) in ENDPOINTS.items():
            response = client.request(method, env.path(path), json=valid(env))
            assert response.status_code in (200, 201, 204), f"{name}: {response.text}"
        for name, (method, path) in NO_PARAMETERS.items():
            for body in (None, {}):
                response = client.request(method, env.path(path), json=body)
                assert response.status_code == 200, f"{name} with {body!r}: {response.text}"


def test_generic_cases_cover_every_endpoint_that_takes_a_body(server: TestServer) -> None:
    """Every Graph POST and PATCH in the OpenAPI document is in ENDPOINTS (every generic case) or in
    NO_PARAMETERS (its own cases)."""

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    covered = {(method, shape(path)) for method, path, _ in ENDPOINTS.values()}
    covered |= {(method, shape(path)) for method, path in NO_PARAMETERS.values()}
    documented = {
        (method.upper(), shape(path))
        for path, item in server.app.openapi()["paths"].items()
        for method in item
        if method in ("post", "patch") and path.startswith("/v1.0/")
    }
    assert documented - covered == set(), "Graph endpoints taking a body without the generic bad-input cases"


# ---------------------------------------------------------------- random bodies

PROPERTY_NAMES = sorted(
    {*USER.by_wire, *GROUP.by_wire, "passwordProfile", "members@odata.bind", "@odata.type"}
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Valid bodies with some properties replaced by random values reach past parsing into the rules and the
# database; arbitrary objects and values exercise the parser.
VALID_BODIES = {
    "/v1.0/users": {
        "accountEnabled": True,
        "displayName": "Random Person",
        "mailNickname": "random",
        "userPrincipalName": "random@example.com",
        "passwordProfile": {"password": PASSWORD},
    },
    "/v1.0/groups": {
        "displayName": "Random Group",
        "mailNickname": "random",
        "mailEnabled": False,
        "securityEnabled": True,
    },
}
random_properties = st.dictionaries(
    st.sampled_from(PROPERTY_NAMES) | st.text(max_size=12), json_values, max_size=8
)


def bodies_for(path: str) -> st.SearchStrategy[Any]:
    mutated = random_properties.map(lambda extra: {**VALID_BODIES[path], **extra})
    return mutated | random_properties | json_values


def test_random_json_bodies_never_cause_a_server_error(server: TestServer) -> None:
    tenant = server.tenant()
    with tenant.client() as client:

        @settings(max_examples=60, deadline=None)
        @given(data=st.data())
        def post_never_5xx(data: st.DataObject) -> None:
            path = data.draw(st.sampled_from(sorted(VALID_BODIES)))
            body = data.draw(bodies_for(path))
            response = client.post(
                path, content=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            assert response.status_code < 500, response.text
            if response.status_code >= 400:
                assert response.json()["error"]["message"]

        post_never_5xx()
