"""Directory objects of either type, type-cast segments and the $ref collection forms Graph clients use."""

from __future__ import annotations

from tests.graph.test_memberships import add
from tests.graph.test_users_and_groups import make_group, make_user
from tests.support.server import TenantHandle


def test_directory_object_by_id_carries_its_type(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "typed.user")
        group = make_group(c, "Typed")
        as_user = c.get(f"/v1.0/directoryObjects/{user['id']}").json()
        as_group = c.get(f"/v1.0/directoryObjects/{group['id']}").json()
        by_ids = c.post(
            "/v1.0/directoryObjects/getByIds", json={"ids": [group["id"], user["id"], "not-an-id"]}
        ).json()
        only_users = c.post(
            "/v1.0/directoryObjects/getByIds", json={"ids": [group["id"], user["id"]], "types": ["user"]}
        ).json()
    assert as_user["@odata.type"] == "#microsoft.graph.user"
    assert as_group["@odata.type"] == "#microsoft.graph.group"
    assert [o["id"] for o in by_ids["value"]] == [group["id"], user["id"]]
    assert [o["id"] for o in only_users["value"]] == [user["id"]]


def test_directory_object_of_an_unreadable_type_looks_absent(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        group = make_group(c, "Hidden From User Readers")
    with tenant.app("User.Read.All").client() as c:
        response = c.get(f"/v1.0/directoryObjects/{group['id']}")
    assert response.status_code == 404


def test_type_cast_segments_select_one_type_and_accept_filters(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        outer, inner = make_group(c, "Cast Outer"), make_group(c, "Cast Inner")
        anna, bert = make_user(c, tenant.domain, "anna.cast"), make_user(c, tenant.domain, "bert.cast")
        add(c, outer["id"], inner["id"])
        add(c, outer["id"], anna["id"])
        add(c, inner["id"], bert["id"])
        direct_users = c.get(f"/v1.0/groups/{outer['id']}/members/microsoft.graph.user").json()["value"]
        direct_groups = c.get(f"/v1.0/groups/{outer['id']}/members/graph.group").json()["value"]
        all_users = c.get(
            f"/v1.0/groups/{outer['id']}/transitiveMembers/microsoft.graph.user",
            params={"$filter": "startswith(displayName,'Bert')"},
        ).json()["value"]
        bert_groups = c.get(f"/v1.0/users/{bert['id']}/transitiveMemberOf/microsoft.graph.group").json()[
            "value"
        ]
    assert [u["id"] for u in direct_users] == [anna["id"]]
    assert [g["id"] for g in direct_groups] == [inner["id"]]
    assert [u["id"] for u in all_users] == [bert["id"]]
    assert sorted(g["id"] for g in bert_groups) == sorted([outer["id"], inner["id"]])


def test_member_refs_list_and_remove_by_id_query(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        group = make_group(c, "Refs")
        user = make_user(c, tenant.domain, "ref.user")
        add(c, group["id"], user["id"])
        refs = c.get(f"/v1.0/groups/{group['id']}/members/$ref").json()["value"]
        removed = c.delete(
            f"/v1.0/groups/{group['id']}/members/$ref",
            params={"$id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"},
        )
        missing_id = c.delete(f"/v1.0/groups/{group['id']}/members/$ref")
        left = c.get(f"/v1.0/groups/{group['id']}/members").json()["value"]
    assert [r["@odata.id"].rsplit("/", 1)[-1] for r in refs] == [user["id"]]
    assert removed.status_code == 204
    assert missing_id.status_code == 400
    assert left == []
