"""Memberships: direct and nested members, transitive queries, getMemberGroups / checkMemberGroups, cycles."""

from __future__ import annotations

import itertools

import httpx

from tests.graph.test_users_and_groups import make_group, make_user
from tests.support.server import TenantHandle


def add(c: httpx.Client, group_id: str, member_id: str) -> httpx.Response:
    return c.post(
        f"/v1.0/groups/{group_id}/members/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member_id}"},
    )


def test_nested_groups_resolve_transitively(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "deep.user")
        chain = [make_group(c, f"Level {i}") for i in range(5)]
        unrelated = make_group(c, "Unrelated")
        assert add(c, chain[4]["id"], user["id"]).status_code == 204
        for parent, child in itertools.pairwise(chain):
            assert add(c, parent["id"], child["id"]).status_code == 204
        direct = c.get(f"/v1.0/users/{user['id']}/memberOf").json()["value"]
        transitive = c.get(f"/v1.0/users/{user['id']}/transitiveMemberOf").json()["value"]
        member_groups = c.post(
            f"/v1.0/users/{user['id']}/getMemberGroups", json={"securityEnabledOnly": True}
        )
        checked = c.post(
            f"/v1.0/users/{user['id']}/checkMemberGroups",
            json={"groupIds": [chain[0]["id"], unrelated["id"], chain[3]["id"]]},
        )
        top_members = c.get(f"/v1.0/groups/{chain[0]['id']}/transitiveMembers").json()["value"]
    assert [g["id"] for g in direct] == [chain[4]["id"]]
    assert {g["id"] for g in transitive} == {g["id"] for g in chain}
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in transitive)
    assert sorted(member_groups.json()["value"]) == sorted(g["id"] for g in chain)
    assert checked.json()["value"] == [chain[0]["id"], chain[3]["id"]]
    types = {m["id"]: m["@odata.type"] for m in top_members}
    assert types[user["id"]] == "#microsoft.graph.user"
    assert len(types) == 5  # four nested groups and the user


def test_security_enabled_only_leaves_out_non_security_groups(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "mixed.user")
        sec = make_group(c, "Security One")
        m365 = make_group(c, "Mail Only", securityEnabled=False, mailEnabled=True, groupTypes=["Unified"])
        add(c, sec["id"], user["id"])
        add(c, m365["id"], user["id"])
        only_sec = c.post(
            f"/v1.0/users/{user['id']}/getMemberGroups", json={"securityEnabledOnly": True}
        ).json()
        every = c.post(
            f"/v1.0/users/{user['id']}/getMemberGroups", json={"securityEnabledOnly": False}
        ).json()
    assert only_sec["value"] == [sec["id"]]
    assert sorted(every["value"]) == sorted([sec["id"], m365["id"]])


def test_cycles_are_refused(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        a, b, d = (make_group(c, n) for n in ("Cycle A", "Cycle B", "Cycle C"))
        assert add(c, a["id"], b["id"]).status_code == 204
        assert add(c, b["id"], d["id"]).status_code == 204
        self_loop = add(c, a["id"], a["id"])
        two_cycle = add(c, b["id"], a["id"])
        three_cycle = add(c, d["id"], a["id"])
        members_of_c = c.get(f"/v1.0/groups/{d['id']}/members").json()["value"]
    for response in (self_loop, two_cycle, three_cycle):
        assert response.status_code == 400
        assert "cycle" in response.json()["error"]["message"]
    assert members_of_c == []


def test_adding_a_member_twice_is_an_object_conflict(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "twice")
        group = make_group(c, "Twice")
        assert add(c, group["id"], user["id"]).status_code == 204
        again = add(c, group["id"], user["id"])
    assert again.status_code == 400
    assert again.json()["error"]["details"][0]["code"] == "ObjectConflict"


def test_group_created_with_members_bind(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        users = [make_user(c, tenant.domain, f"bound{i}") for i in range(2)]
        group = make_group(
            c,
            "Bound",
            **{"members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{u['id']}" for u in users]},
        )
        members = c.get(f"/v1.0/groups/{group['id']}/members?$select=displayName").json()["value"]
        count = c.get(f"/v1.0/groups/{group['id']}/members/$count", headers={"ConsistencyLevel": "eventual"})
    assert sorted(m["id"] for m in members) == sorted(u["id"] for u in users)
    assert count.text == "2"


def test_removing_a_member_that_is_not_there_is_not_found(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "absent")
        group = make_group(c, "Absent")
        response = c.delete(f"/v1.0/groups/{group['id']}/members/{user['id']}/$ref")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"


def test_members_pages_follow_next_link(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        group = make_group(c, "Big")
        ids = set()
        for i in range(7):
            user = make_user(c, tenant.domain, f"member{i}")
            add(c, group["id"], user["id"])
            ids.add(user["id"])
        seen: list[str] = []
        url: str | None = f"/v1.0/groups/{group['id']}/members?$top=3"
        while url:
            body = c.get(url).json()
            seen.extend(m["id"] for m in body["value"])
            url = body.get("@odata.nextLink")
    assert sorted(seen) == sorted(ids)
