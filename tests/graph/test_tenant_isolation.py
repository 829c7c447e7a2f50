"""Tenant isolation: a token of tenant A cannot read, list, change or delete anything of tenant B, tested
for every Graph route enumerated from the OpenAPI document (a new read of one object is probed
generically; a new write or collection route fails here until a probe is written for it). Afterwards B's
data is byte-for-byte what it was and B's audit log has no new entry."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.server import TenantHandle, TestServer
from trustplane.auth.tokens import issuer_for
from trustplane.core.clock import utcnow
from trustplane.core.events import SYSTEM
from trustplane.graph.properties import GROUP, USER
from trustplane.protection import service as protection

EVENTUAL = {"ConsistencyLevel": "eventual"}
TABLES = (
    "users",
    "groups",
    "memberships",
    "directory_values",
    "events",
    "jobs",
    "audit_log",
    "risky_users",
    "risky_user_history",
    "risk_detections",
    "sign_ins",
    "ca_policies",
    "ca_named_locations",
)
RISK_PERMISSIONS = ("IdentityRiskyUser.ReadWrite.All", "IdentityRiskEvent.Read.All", "AuditLog.Read.All")
CA = "/v1.0/identity/conditionalAccess"
CA_PERMISSIONS = ("Policy.ReadWrite.ConditionalAccess",)


@dataclass
class World:
    """Tenant B: user ``b_user`` in group ``b_group``, which also holds ``b_nested`` (a group).
    Tenant A: ``a_user`` in ``a_group``, which is itself in ``a_parent``."""

    a: TenantHandle
    b: TenantHandle
    ids: dict[str, str] = field(default_factory=dict)
    upns: dict[str, str] = field(default_factory=dict)
    b_risk: TenantHandle | None = None  # an app of B with the identity protection permissions
    b_ca: TenantHandle | None = None  # an app of B that manages conditional access

    @property
    def b_ids(self) -> set[str]:
        return {v for k, v in self.ids.items() if k.startswith("b_")}


def ref(server: TestServer, object_id: str) -> str:
    return f"{server.url}/v1.0/directoryObjects/{object_id}"


def make_user(c: httpx.Client, world: World, key: str, domain: str) -> None:
    upn = f"{key.replace('_', '.')}@{domain}"
    r = c.post(
        "/v1.0/users",
        json={
            "accountEnabled": True,
            "displayName": f"Person {key}",
            "mailNickname": key,
            "userPrincipalName": upn,
            "passwordProfile": {"password": "Correct-Horse-Battery-1"},
            "otherMails": [f"{key}@mail.example"],
        },
    )
    assert r.status_code == 201, r.text
    world.ids[key] = r.json()["id"]
    world.upns[key] = upn


def make_group(c: httpx.Client, server: TestServer, world: World, key: str, members: list[str]) -> None:
    r = c.post(
        "/v1.0/groups",
        json={
            "displayName": f"Group {key}",
            "mailNickname": key,
            "mailEnabled": False,
            "securityEnabled": True,
            "groupTypes": [],
            "members@odata.bind": [ref(server, world.ids[m]) for m in members],
        },
    )
    assert r.status_code == 201, r.text
    world.ids[key] = r.json()["id"]


@pytest.fixture
def world(server: TestServer) -> World:
    w = World(server.tenant(), server.tenant())
    for handle, prefix in ((w.b, "b"), (w.a, "a")):
        with handle.client() as c:
            make_user(c, w, f"{prefix}_user", handle.domain)
            if prefix == "b":
                make_group(c, server, w, "b_nested", [])
                make_group(c, server, w, "b_group", ["b_user", "b_nested"])
            else:
                make_group(c, server, w, "a_group", ["a_user"])
                make_group(c, server, w, "a_parent", ["a_group"])
    protect_b(server, w)
    guard_b(w)
    server.wait_for_jobs()
    return w


def ca_policy(w: World, prefix: str, location_key: str | None = None) -> dict[str, Any]:
    conditions: dict[str, Any] = {
        "users": {"includeUsers": [w.ids[f"{prefix}_user"]], "includeGroups": [w.ids[f"{prefix}_group"]]},
        "applications": {"includeApplications": ["All"]},
    }
    if location_key is not None:
        conditions["locations"] = {"includeLocations": [w.ids[location_key]]}
    return {
        "displayName": f"Policy {prefix}",
        "state": "enabled",
        "conditions": conditions,
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


CA_LOCATION = {
    "@odata.type": "#microsoft.graph.ipNamedLocation",
    "displayName": "Office",
    "isTrusted": True,
    "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"}],
}


def guard_b(w: World) -> None:
    """B's conditional access: a named location and a policy that blocks b_user there."""
    w.b_ca = w.b.app(*CA_PERMISSIONS, name="ca admin")
    with w.b_ca.client() as cb:
        r = cb.post(f"{CA}/namedLocations", json=CA_LOCATION)
        assert r.status_code == 201, r.text
        w.ids["b_location"] = r.json()["id"]
        r = cb.post(f"{CA}/policies", json=ca_policy(w, "b", "b_location"))
        assert r.status_code == 201, r.text
        w.ids["b_policy"] = r.json()["id"]


def protect_b(server: TestServer, w: World) -> None:
    """B's identity protection data: b_user confirmed compromised and a risky sign-in of b_user."""

    async def make() -> None:
        async with server.db.session() as session:
            await protection.confirm_compromised(session, w.b.tenant_id, SYSTEM, [w.ids["b_user"]])
            attempt = protection.SignInAttempt(
                user_principal_name=w.upns["b_user"], at=utcnow(), ip_address="185.220.101.1"
            )
            result = await protection.assess(session, w.b.tenant_id, attempt)
            w.ids["b_sign_in"] = result.sign_in.id
            w.ids["b_detection"] = result.detections[0].id

    server.run(make())
    w.b_risk = w.b.app(*RISK_PERMISSIONS, name="risk reader")


# ---------------------------------------------------------------- probes, by (METHOD, path template)

Check = Callable[[httpx.Client, World, TestServer], None]


def not_found(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code == 404, f"{where}: {response.status_code} {response.text}"
    assert response.json()["error"]["code"] == "Request_ResourceNotFound", where


def ids_in(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["value"]}


def assert_only_own(
    c: httpx.Client, w: World, path: str, queries: list[dict[str, str]], b_expected: set[str]
) -> None:
    """Each query from A finds nothing of B; the same query from B finds B's objects (so the query would
    match if the tenant scope were missing)."""
    with w.b.client(**EVENTUAL) as cb:
        for params in queries:
            assert not ids_in(c.get(path, params=params, headers=EVENTUAL)) & w.b_ids, params
            assert ids_in(cb.get(path, params=params)) == b_expected, params


def list_users(c: httpx.Client, w: World, server: TestServer) -> None:
    assert ids_in(c.get("/v1.0/users")) == {w.ids["a_user"]}
    assert ids_in(c.get("/v1.0/users", params={"$top": "1"})) == {w.ids["a_user"]}
    counted = c.get("/v1.0/users", params={"$count": "true"}, headers=EVENTUAL)
    assert counted.json()["@odata.count"] == 1
    queries = [
        {"$filter": f"userPrincipalName eq '{w.upns['b_user']}'"},
        {"$filter": f"id eq '{w.ids['b_user']}'"},
        {"$filter": "otherMails/any(m:m eq 'b_user@mail.example')"},
        {"$filter": "startswith(displayName, 'Person b_')"},
        {"$search": '"displayName:Person"'},
    ]
    assert_only_own(c, w, "/v1.0/users", queries, {w.ids["b_user"]})


def count_users(c: httpx.Client, w: World, server: TestServer) -> None:
    assert c.get("/v1.0/users/$count", headers=EVENTUAL).text == "1"
    upn_filter = f"userPrincipalName eq '{w.upns['b_user']}'"
    assert c.get("/v1.0/users/$count", params={"$filter": upn_filter}, headers=EVENTUAL).text == "0"


def create_user(c: httpx.Client, w: World, server: TestServer) -> None:
    """Creating in A with B's user's alias lands in A and does not collide with B's user."""
    local = w.upns["b_user"].split("@")[0]
    r = c.post(
        "/v1.0/users",
        json={
            "accountEnabled": True,
            "displayName": "Person b_user",
            "mailNickname": "b_user",
            "userPrincipalName": f"{local}@{w.a.domain}",
            "passwordProfile": {"password": "Correct-Horse-Battery-1"},
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()["id"]
    assert server.scalar("SELECT tenant_id FROM users WHERE id = :id", id=created) == w.a.tenant_id
    assert c.delete(f"/v1.0/users/{created}").status_code == 204


def list_groups(c: httpx.Client, w: World, server: TestServer) -> None:
    assert ids_in(c.get("/v1.0/groups")) == {w.ids["a_group"], w.ids["a_parent"]}
    queries = [
        {"$filter": "displayName eq 'Group b_group'"},
        {"$filter": f"id eq '{w.ids['b_group']}'"},
        {"$filter": "mailNickname eq 'b_group'"},
        {"$search": '"displayName:b_group"'},
    ]
    assert_only_own(c, w, "/v1.0/groups", queries, {w.ids["b_group"]})


def count_groups(c: httpx.Client, w: World, server: TestServer) -> None:
    assert c.get("/v1.0/groups/$count", headers=EVENTUAL).text == "2"
    only_b = "startswith(displayName, 'Group b_')"
    assert c.get("/v1.0/groups/$count", params={"$filter": only_b}, headers=EVENTUAL).text == "0"


def create_group(c: httpx.Client, w: World, server: TestServer) -> None:
    """A new group in A cannot take B's objects as members, and the failed create leaves nothing behind."""
    before = server.scalar("SELECT count(*) FROM groups WHERE tenant_id = :t", t=w.a.tenant_id)
    for key in ("b_user", "b_nested"):
        r = c.post(
            "/v1.0/groups",
            json={
                "displayName": "Smuggler",
                "mailNickname": "smuggler",
                "mailEnabled": False,
                "securityEnabled": True,
                "members@odata.bind": [ref(server, w.ids[key])],
            },
        )
        not_found(r)
    assert server.scalar("SELECT count(*) FROM groups WHERE tenant_id = :t", t=w.a.tenant_id) == before


def add_member_ref(c: httpx.Client, w: World, server: TestServer) -> None:
    # A's user into B's group, B's objects into A's group: all 404.
    not_found(
        c.post(
            f"/v1.0/groups/{w.ids['b_group']}/members/$ref", json={"@odata.id": ref(server, w.ids["a_user"])}
        )
    )
    for key in ("b_user", "b_nested", "b_group"):
        r = c.post(
            f"/v1.0/groups/{w.ids['a_group']}/members/$ref", json={"@odata.id": ref(server, w.ids[key])}
        )
        not_found(r)


def remove_member_ref(c: httpx.Client, w: World, server: TestServer) -> None:
    not_found(c.delete(f"/v1.0/groups/{w.ids['b_group']}/members/{w.ids['b_user']}/$ref"))
    not_found(c.delete(f"/v1.0/groups/{w.ids['b_group']}/members/{w.ids['b_nested']}/$ref"))
    not_found(c.delete(f"/v1.0/groups/{w.ids['a_group']}/members/{w.ids['b_user']}/$ref"))


def member_groups(kind: str, a_subject: str, expected: tuple[str, ...], b_subjects: tuple[str, ...]) -> Check:
    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        for key in b_subjects:
            not_found(
                c.post(f"/v1.0/{kind}/{w.ids[key]}/getMemberGroups", json={"securityEnabledOnly": False})
            )
        r = c.post(f"/v1.0/{kind}/{w.ids[a_subject]}/getMemberGroups", json={"securityEnabledOnly": False})
        assert r.status_code == 200, r.text
        assert set(r.json()["value"]) == {w.ids[k] for k in expected}
        assert not set(r.json()["value"]) & w.b_ids

    return check


def check_groups(kind: str, a_subject: str, expected: tuple[str, ...], b_subjects: tuple[str, ...]) -> Check:
    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        asked = [w.ids["b_group"], w.ids["b_nested"], w.ids["a_group"], w.ids["a_parent"]]
        for key in b_subjects:
            not_found(c.post(f"/v1.0/{kind}/{w.ids[key]}/checkMemberGroups", json={"groupIds": asked}))
        r = c.post(f"/v1.0/{kind}/{w.ids[a_subject]}/checkMemberGroups", json={"groupIds": asked})
        assert r.status_code == 200, r.text
        assert r.json()["value"] == [w.ids[k] for k in expected]

    return check


def remove_member_by_id_query(c: httpx.Client, w: World, server: TestServer) -> None:
    for group, member in (("b_group", "b_user"), ("b_group", "b_nested"), ("a_group", "b_user")):
        params = {"$id": ref(server, w.ids[member])}
        not_found(c.delete(f"/v1.0/groups/{w.ids[group]}/members/$ref", params=params))


def get_by_ids(c: httpx.Client, w: World, server: TestServer) -> None:
    asked = [w.ids[k] for k in ("b_user", "b_group", "b_nested", "a_user", "a_group")]
    for types in (None, ["user"], ["group"], ["user", "group"]):
        body: dict[str, Any] = {"ids": asked} if types is None else {"ids": asked, "types": types}
        r = c.post("/v1.0/directoryObjects/getByIds", json=body)
        assert r.status_code == 200, r.text
        assert not ids_in(r) & w.b_ids, types


PATCH_USER = {"displayName": "Taken over", "accountEnabled": False}
PATCH_GROUP = {"displayName": "Taken over", "members@odata.bind": []}


def b_audit_ids(w: World, server: TestServer) -> set[str]:
    server.wait_for_jobs()
    with w.b.client() as cb:
        found = ids_in(cb.get("/v1.0/auditLogs/directoryAudits", params={"$top": "999"}))
    assert found, "tenant B has audit entries, so the tenant scope is what keeps them from A"
    return found


def list_audits(c: httpx.Client, w: World, server: TestServer) -> None:
    b_entries = b_audit_ids(w, server)
    response = c.get("/v1.0/auditLogs/directoryAudits", params={"$top": "999"})
    assert not ids_in(response) & b_entries
    targets = {t["id"] for entry in response.json()["value"] for t in entry["targetResources"]}
    assert not targets & w.b_ids


def get_audit(c: httpx.Client, w: World, server: TestServer) -> None:
    for entry in b_audit_ids(w, server):
        not_found(c.get(f"/v1.0/auditLogs/directoryAudits/{entry}"))


def each(keys: tuple[str, ...], call: Callable[[httpx.Client, str], httpx.Response]) -> Check:
    """Calls ``call`` with each of B's objects named by ``keys`` (users by id and by UPN): all 404."""

    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        for key in keys:
            not_found(call(c, w.ids[key]))
            if key in w.upns:
                not_found(call(c, w.upns[key]))

    return check


def risk_reader(w: World) -> httpx.Client:
    """A client of tenant A that holds the identity protection permissions (A's default app does not)."""
    return w.a.app(*RISK_PERMISSIONS, name="risk reader").client()


def list_risk(path: str, b_keys: tuple[str, ...]) -> Check:
    """A's listing, filtered or not, shows none of B's rows; B's own listing shows them."""

    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        b_expected = {w.ids[k] for k in b_keys}
        assert w.b_risk is not None
        with risk_reader(w) as ca, w.b_risk.client() as cb:
            for params in ({}, {"$top": "999"}, {"$filter": f"userId eq '{w.ids['b_user']}'"}):
                if "riskyUsers" in path and "$filter" in params:
                    params = {"$filter": "riskLevel eq 'high' or riskLevel eq 'medium'"}
                assert not ids_in(ca.get(path, params=params)) & w.b_ids, (path, params)
                assert ids_in(cb.get(path, params=params)) >= b_expected, (path, params)

    return check


def read_risk(template: str, keys: tuple[str, ...]) -> Check:
    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        with risk_reader(w) as ca:
            for key in keys:
                not_found(ca.get(template.format(id=w.ids[key])))

    return check


def risk_action(action: str) -> Check:
    """Naming B's user in an action of A is refused (A has no such user) and changes nothing of B."""

    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        with risk_reader(w) as ca:
            r = ca.post(f"/v1.0/identityProtection/riskyUsers/{action}", json={"userIds": [w.ids["b_user"]]})
            assert r.status_code == 400, r.text

    return check


def ca_admin(w: World) -> httpx.Client:
    """A client of tenant A that manages conditional access (A's default app cannot)."""
    return w.a.app(*CA_PERMISSIONS, name="ca admin").client()


def list_ca(kind: str, b_key: str) -> Check:
    """A's listing (plain, filtered by B's id or name) shows nothing of B; B's shows B's object."""

    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        assert w.b_ca is not None
        name = "Office" if kind == "namedLocations" else "Policy b"
        queries = [{}, {"$filter": f"id eq '{w.ids[b_key]}'"}, {"$filter": f"displayName eq '{name}'"}]
        with ca_admin(w) as ca, w.b_ca.client() as cb:
            for params in queries:
                assert not ids_in(ca.get(f"{CA}/{kind}", params=params)) & w.b_ids, params
                assert w.ids[b_key] in ids_in(cb.get(f"{CA}/{kind}", params=params)), params

    return check


def ca_each(kind: str, b_key: str, call: Callable[[httpx.Client, str], httpx.Response]) -> Check:
    def check(c: httpx.Client, w: World, server: TestServer) -> None:
        with ca_admin(w) as ca:
            not_found(call(ca, f"{CA}/{kind}/{w.ids[b_key]}"))

    return check


def create_ca_policy(c: httpx.Client, w: World, server: TestServer) -> None:
    """A policy of A cannot name B's named location; one naming only A's objects lands in A."""
    with ca_admin(w) as ca:
        refused = ca.post(f"{CA}/policies", json=ca_policy(w, "a", "b_location"))
        assert refused.status_code in (400, 404), refused.text
        created = ca.post(f"{CA}/policies", json=ca_policy(w, "a"))
        assert created.status_code == 201, created.text
        policy = created.json()["id"]
        assert server.scalar("SELECT tenant_id FROM ca_policies WHERE id = :id", id=policy) == w.a.tenant_id
        assert ca.delete(f"{CA}/policies/{policy}").status_code == 204


def create_ca_location(c: httpx.Client, w: World, server: TestServer) -> None:
    with ca_admin(w) as ca:
        created = ca.post(f"{CA}/namedLocations", json=CA_LOCATION)
        assert created.status_code == 201, created.text
        location = created.json()["id"]
        assert location != w.ids["b_location"]
        where = "SELECT tenant_id FROM ca_named_locations WHERE id = :id"
        assert server.scalar(where, id=location) == w.a.tenant_id
        assert ca.delete(f"{CA}/namedLocations/{location}").status_code == 204


def ca_what_if(c: httpx.Client, w: World, server: TestServer) -> None:
    """What-If in A for B's user is refused; for A's user it reports none of B's policies."""

    def ask(ca: httpx.Client, user_key: str) -> httpx.Response:
        return ca.post(
            f"{CA}/evaluate",
            json={
                "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": w.ids[user_key]},
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": ["All"],
                },
                "signInConditions": {"ipAddress": "198.51.100.7"},
            },
        )

    with ca_admin(w) as ca:
        refused = ask(ca, "b_user")
        assert refused.status_code in (400, 404), refused.text
        assert w.ids["b_policy"] not in refused.text
        answered = ask(ca, "a_user")
        assert answered.status_code == 200, answered.text
        assert w.ids["b_policy"] not in answered.text and w.ids["b_location"] not in answered.text


def ca_templates(c: httpx.Client, w: World, server: TestServer) -> None:
    with ca_admin(w) as ca:
        listed = ca.get(f"{CA}/templates")
        assert listed.status_code == 200, listed.text
        assert not ids_in(listed) & w.b_ids
        for template in ids_in(listed):
            one = ca.get(f"{CA}/templates/{template}")
            assert one.status_code == 200, one.text
            assert not w.b_ids & set(re.findall(r"[0-9a-f-]{36}", one.text))


def ca_from_templates(c: httpx.Client, w: World, server: TestServer) -> None:
    """Policies A creates from templates land in A only, even when they name B's objects (which then
    match no one of A); B's policies and the rest of B stay as they were (the snapshot compares them)."""
    with ca_admin(w) as ca:
        r = ca.post(
            f"{CA}/templates/createPolicies",
            json={"excludeUsers": [w.ids["b_user"]], "excludeGroups": [w.ids["b_group"]]},
        )
        assert r.status_code == 201, r.text
        for policy in (item["id"] for item in r.json()["value"]):
            where = "SELECT tenant_id FROM ca_policies WHERE id = :id"
            assert server.scalar(where, id=policy) == w.a.tenant_id
            assert ca.delete(f"{CA}/policies/{policy}").status_code == 204


# Writes and collections: each needs a probe written for it. A new one fails the coverage test until it has.
PROBES: dict[tuple[str, str], Check] = {
    ("GET", "/v1.0/users"): list_users,
    ("GET", "/v1.0/users/$count"): count_users,
    ("POST", "/v1.0/users"): create_user,
    ("PATCH", "/v1.0/users/{user_id}"): each(
        ("b_user",), lambda c, i: c.patch(f"/v1.0/users/{i}", json=PATCH_USER)
    ),
    ("DELETE", "/v1.0/users/{user_id}"): each(("b_user",), lambda c, i: c.delete(f"/v1.0/users/{i}")),
    ("POST", "/v1.0/users/{user_id}/revokeSignInSessions"): each(
        ("b_user",), lambda c, i: c.post(f"/v1.0/users/{i}/revokeSignInSessions")
    ),
    ("GET", "/v1.0/groups"): list_groups,
    ("GET", "/v1.0/groups/$count"): count_groups,
    ("POST", "/v1.0/groups"): create_group,
    ("PATCH", "/v1.0/groups/{group_id}"): each(
        ("b_group", "b_nested"), lambda c, i: c.patch(f"/v1.0/groups/{i}", json=PATCH_GROUP)
    ),
    ("DELETE", "/v1.0/groups/{group_id}"): each(
        ("b_group", "b_nested"), lambda c, i: c.delete(f"/v1.0/groups/{i}")
    ),
    ("POST", "/v1.0/groups/{group_id}/members/$ref"): add_member_ref,
    ("DELETE", "/v1.0/groups/{group_id}/members/$ref"): remove_member_by_id_query,
    ("DELETE", "/v1.0/groups/{group_id}/members/{member_id}/$ref"): remove_member_ref,
    ("POST", "/v1.0/users/{object_id}/getMemberGroups"): member_groups(
        "users", "a_user", ("a_group", "a_parent"), ("b_user",)
    ),
    ("POST", "/v1.0/users/{object_id}/checkMemberGroups"): check_groups(
        "users", "a_user", ("a_group", "a_parent"), ("b_user",)
    ),
    ("POST", "/v1.0/groups/{object_id}/getMemberGroups"): member_groups(
        "groups", "a_group", ("a_parent",), ("b_nested", "b_group")
    ),
    ("POST", "/v1.0/groups/{object_id}/checkMemberGroups"): check_groups(
        "groups", "a_group", ("a_parent",), ("b_nested", "b_group")
    ),
    ("POST", "/v1.0/directoryObjects/getByIds"): get_by_ids,
    ("GET", "/v1.0/auditLogs/directoryAudits"): list_audits,
    ("GET", "/v1.0/auditLogs/directoryAudits/{audit_id}"): get_audit,
    ("GET", "/v1.0/identityProtection/riskyUsers"): list_risk(
        "/v1.0/identityProtection/riskyUsers", ("b_user",)
    ),
    ("GET", "/v1.0/identityProtection/riskyUsers/{user_id}"): read_risk(
        "/v1.0/identityProtection/riskyUsers/{id}", ("b_user",)
    ),
    ("GET", "/v1.0/identityProtection/riskyUsers/{user_id}/history"): read_risk(
        "/v1.0/identityProtection/riskyUsers/{id}/history", ("b_user",)
    ),
    ("POST", "/v1.0/identityProtection/riskyUsers/confirmCompromised"): risk_action("confirmCompromised"),
    ("POST", "/v1.0/identityProtection/riskyUsers/confirmSafe"): risk_action("confirmSafe"),
    ("POST", "/v1.0/identityProtection/riskyUsers/dismiss"): risk_action("dismiss"),
    ("GET", "/v1.0/identityProtection/riskDetections"): list_risk(
        "/v1.0/identityProtection/riskDetections", ("b_detection",)
    ),
    ("GET", "/v1.0/identityProtection/riskDetections/{detection_id}"): read_risk(
        "/v1.0/identityProtection/riskDetections/{id}", ("b_detection",)
    ),
    ("GET", f"{CA}/policies"): list_ca("policies", "b_policy"),
    ("POST", f"{CA}/policies"): create_ca_policy,
    ("GET", CA + "/policies/{policy_id}"): ca_each("policies", "b_policy", lambda c, u: c.get(u)),
    ("PATCH", CA + "/policies/{policy_id}"): ca_each(
        "policies", "b_policy", lambda c, u: c.patch(u, json={"state": "disabled"})
    ),
    ("DELETE", CA + "/policies/{policy_id}"): ca_each("policies", "b_policy", lambda c, u: c.delete(u)),
    ("GET", f"{CA}/namedLocations"): list_ca("namedLocations", "b_location"),
    ("POST", f"{CA}/namedLocations"): create_ca_location,
    ("GET", CA + "/namedLocations/{location_id}"): ca_each(
        "namedLocations", "b_location", lambda c, u: c.get(u)
    ),
    ("PATCH", CA + "/namedLocations/{location_id}"): ca_each(
        "namedLocations",
        "b_location",
        lambda c, u: c.patch(u, json={"@odata.type": "#microsoft.graph.ipNamedLocation", "isTrusted": False}),
    ),
    ("DELETE", CA + "/namedLocations/{location_id}"): ca_each(
        "namedLocations", "b_location", lambda c, u: c.delete(u)
    ),
    ("POST", f"{CA}/evaluate"): ca_what_if,
    ("GET", f"{CA}/templates"): ca_templates,
    ("GET", CA + "/templates/{template_id}"): ca_templates,
    ("POST", f"{CA}/templates/createPolicies"): ca_from_templates,
    ("GET", "/v1.0/auditLogs/signIns"): list_risk("/v1.0/auditLogs/signIns", ("b_sign_in",)),
    ("GET", "/v1.0/auditLogs/signIns/{sign_in_id}"): read_risk(
        "/v1.0/auditLogs/signIns/{id}", ("b_sign_in",)
    ),
}

# Reads of one object or its sub-collections (one id in the path) get a generic probe: B's objects of the
# addressed kind, each by id (and users by UPN), answer 404. New read routes are covered automatically.
B_OBJECTS_BY_PREFIX = {
    "/v1.0/users/{": ("b_user",),
    "/v1.0/groups/{": ("b_group", "b_nested"),
    "/v1.0/directoryObjects/{": ("b_user", "b_group", "b_nested"),
}


def generic_read_probe(method: str, path: str) -> Check | None:
    if method != "GET" or path.count("{") != 1:
        return None
    for prefix, keys in B_OBJECTS_BY_PREFIX.items():
        if path.startswith(prefix):
            template = re.sub(r"\{[^}]+\}", "{id}", path)

            def read(c: httpx.Client, object_id: str, template: str = template) -> httpx.Response:
                return c.get(template.format(id=object_id), headers=EVENTUAL)

            return each(keys, read)
    return None


def probe_for(method: str, path: str) -> Check | None:
    return PROBES.get((method, path)) or generic_read_probe(method, path)


def graph_operations(server: TestServer) -> set[tuple[str, str]]:
    ops = {
        (method.upper(), path)
        for path, item in server.app.openapi()["paths"].items()
        for method in item
        if path.startswith("/v1.0/")
    }
    assert len(ops) >= 20, f"only {len(ops)} Graph operations in the OpenAPI document"
    return ops


def b_snapshot(server: TestServer, w: World) -> dict[str, Any]:
    """B's data as B itself sees it over the wire (raw bytes), plus B's row counts per table."""
    ids = w.ids
    paths = [
        "/v1.0/users",
        "/v1.0/groups",
        f"/v1.0/users/{ids['b_user']}?$select=" + ",".join(USER.by_wire),
        f"/v1.0/groups/{ids['b_group']}?$select=" + ",".join(GROUP.by_wire),
        f"/v1.0/groups/{ids['b_nested']}?$select=" + ",".join(GROUP.by_wire),
        f"/v1.0/groups/{ids['b_group']}/members",
        f"/v1.0/groups/{ids['b_group']}/transitiveMembers",
        f"/v1.0/users/{ids['b_user']}/memberOf",
        f"/v1.0/groups/{ids['b_nested']}/transitiveMemberOf",
    ]
    snap: dict[str, Any] = {}
    with w.b.client() as c:
        for path in paths:
            r = c.get(path)
            assert r.status_code == 200, r.text
            snap[path] = r.content
    assert w.b_ca is not None
    with w.b_ca.client() as c:
        for path in (
            f"{CA}/policies",
            f"{CA}/namedLocations",
            f"{CA}/policies/{ids['b_policy']}",
            f"{CA}/namedLocations/{ids['b_location']}",
        ):
            r = c.get(path)
            assert r.status_code == 200, r.text
            snap[path] = r.content
    server.wait_for_jobs()
    for table in TABLES:
        snap[table] = server.scalar(f"SELECT count(*) FROM {table} WHERE tenant_id = :t", t=w.b.tenant_id)
    return snap


def test_every_graph_route_has_an_isolation_probe(server: TestServer) -> None:
    ops = graph_operations(server)
    assert {op for op in ops if probe_for(*op) is None} == set(), "Graph routes without an isolation probe"
    assert set(PROBES) - ops == set(), "probes for routes that no longer exist"


def test_tenant_a_cannot_read_list_change_or_delete_anything_of_tenant_b(
    server: TestServer, world: World
) -> None:
    before = b_snapshot(server, world)
    exercised = []
    with world.a.client() as c:
        for op in sorted(graph_operations(server)):
            probe = probe_for(*op)
            assert probe is not None, f"no isolation probe for {op}"
            probe(c, world, server)
            exercised.append(op)
    assert set(exercised) == graph_operations(server)
    after = b_snapshot(server, world)
    assert after == before


def test_api_token_of_tenant_a_used_as_bearer_sees_only_tenant_a(server: TestServer, world: World) -> None:
    token = world.a.api_token("Directory.Read.All")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert ids_in(c.get("/v1.0/users")) == {world.ids["a_user"]}
        assert ids_in(c.get("/v1.0/groups")) == {world.ids["a_group"], world.ids["a_parent"]}
        not_found(c.get(f"/v1.0/users/{world.ids['b_user']}"))
        not_found(c.get(f"/v1.0/users/{world.upns['b_user']}"))
        not_found(c.get(f"/v1.0/groups/{world.ids['b_group']}/members"))


def signing_key(server: TestServer, tenant_id: str) -> RSAKey:
    async def load() -> RSAKey:
        async with server.db.session() as session:
            return await server.keys.active_key(session, tenant_id)

    return server.run(load())


def test_token_signed_with_tenant_a_key_cannot_speak_for_tenant_b(server: TestServer, world: World) -> None:
    """The verifier binds each signing key to its tenant: A's key cannot mint a token for B, even with every
    other claim (issuer, tid) set as B's would be."""
    key_a = signing_key(server, world.a.tenant_id)
    claims = dict(jwt.decode(world.a.token(), key_a, algorithms=["RS256"]).claims)
    header = {"alg": "RS256", "typ": "JWT", "kid": key_a.kid}

    def call(token: str) -> httpx.Response:
        return httpx.get(f"{server.url}/v1.0/users", headers={"Authorization": f"Bearer {token}"})

    # Control: the same construction for A itself is accepted, so the refusal below is the tenant binding.
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + 600)
    assert call(jwt.encode(header, claims, key_a, algorithms=["RS256"])).status_code == 200

    forged = {**claims, "tid": world.b.tenant_id, "iss": issuer_for(server.url, world.b.tenant_id)}
    response = call(jwt.encode(header, forged, key_a, algorithms=["RS256"]))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    # A's kid is not published in B's JWKS either.
    jwks_b = httpx.get(f"{server.url}/{world.b.tenant_id}/discovery/v2.0/keys").json()
    assert key_a.kid not in {k["kid"] for k in jwks_b["keys"]}
