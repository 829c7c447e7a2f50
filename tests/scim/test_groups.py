"""SCIM Groups: members as directory memberships, member PATCH as single-edge changes (204, O(1)), PUT of the
member list, filters on members, and groups inside groups."""

from __future__ import annotations

import httpx
import pytest

from tests.scim.support import GROUP, assert_scim_error, create_group, create_user, patch, scim_client
from tests.support.server import TenantHandle, TestServer


@pytest.fixture
def scim(tenant: TenantHandle) -> httpx.Client:
    return scim_client(tenant)


def member_ids(scim: httpx.Client, group_id: str) -> list[str]:
    return sorted(m["value"] for m in scim.get(f"/Groups/{group_id}").json().get("members", []))


def test_create_with_members_renders_value_ref_and_type(scim: httpx.Client) -> None:
    user = create_user(scim, "m1@example.com")
    inner = create_group(scim, "Inner")
    group = create_group(scim, "Outer", [user["id"], inner["id"]])
    members = {m["value"]: m for m in group["members"]}
    assert members[user["id"]]["type"] == "User"
    assert members[user["id"]]["$ref"].endswith(f"/scim/v2/Users/{user['id']}")
    assert members[inner["id"]]["type"] == "Group"
    assert group["meta"]["resourceType"] == "Group"


def test_create_with_an_unknown_member_is_invalid_value_and_nothing_is_written(
    server: TestServer, tenant: TenantHandle
) -> None:
    with scim_client(tenant) as scim:
        response = scim.post(
            "/Groups",
            json={"schemas": [GROUP], "displayName": "Ghosts", "members": [{"value": "not-a-user"}]},
        )
        assert_scim_error(response, 400, "invalidValue")
    assert server.scalar("SELECT count(*) FROM groups WHERE tenant_id = :t", t=tenant.tenant_id) == 0


def test_member_add_and_remove_by_filter_answer_204_and_move_the_etag(scim: httpx.Client) -> None:
    a, b = create_user(scim, "a@example.com"), create_user(scim, "b@example.com")
    group = create_group(scim, "Team", [a["id"]])
    added = patch(
        scim, f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": b["id"]}]}
    )
    assert added.status_code == 204 and added.text == ""
    assert added.headers["etag"] != group["meta"]["version"]
    assert member_ids(scim, group["id"]) == sorted([a["id"], b["id"]])
    removed = patch(
        scim, f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{a["id"]}"]'}
    )
    assert removed.status_code == 204
    assert member_ids(scim, group["id"]) == [b["id"]]


def test_adding_an_existing_member_changes_nothing(scim: httpx.Client) -> None:
    a = create_user(scim, "again@example.com")
    group = create_group(scim, "Again", [a["id"]])
    response = patch(
        scim, f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": a["id"]}]}
    )
    assert response.status_code == 204
    assert member_ids(scim, group["id"]) == [a["id"]]


def test_remove_members_without_filter_removes_all_in_strict_mode(scim: httpx.Client) -> None:
    a, b = create_user(scim, "x1@example.com"), create_user(scim, "x2@example.com")
    group = create_group(scim, "All", [a["id"], b["id"]])
    assert patch(scim, f"/Groups/{group['id']}", {"op": "remove", "path": "members"}).status_code == 204
    assert member_ids(scim, group["id"]) == []


def test_remove_members_by_type_filter_evaluates_the_filter(scim: httpx.Client) -> None:
    user = create_user(scim, "typed@example.com")
    inner = create_group(scim, "Typed inner")
    group = create_group(scim, "Typed", [user["id"], inner["id"]])
    patch(scim, f"/Groups/{group['id']}", {"op": "remove", "path": 'members[type eq "Group"]'})
    assert member_ids(scim, group["id"]) == [user["id"]]


def test_put_replaces_the_member_list(scim: httpx.Client) -> None:
    a, b, c = (create_user(scim, f"p{i}@example.com") for i in range(3))
    group = create_group(scim, "Put", [a["id"], b["id"]])
    response = scim.put(
        f"/Groups/{group['id']}",
        json={
            "schemas": [GROUP],
            "displayName": "Put 2",
            "members": [{"value": b["id"]}, {"value": c["id"]}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "Put 2"
    assert member_ids(scim, group["id"]) == sorted([b["id"], c["id"]])


def test_patch_of_display_name_answers_200_with_the_group(scim: httpx.Client) -> None:
    group = create_group(scim, "Before")
    response = patch(
        scim, f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "After"}
    )
    assert response.status_code == 200 and response.json()["displayName"] == "After"


def test_a_membership_cycle_is_refused_with_invalid_value(scim: httpx.Client) -> None:
    outer = create_group(scim, "Cycle outer")
    inner = create_group(scim, "Cycle inner", [outer["id"]])
    response = patch(
        scim, f"/Groups/{outer['id']}", {"op": "add", "path": "members", "value": [{"value": inner["id"]}]}
    )
    assert_scim_error(response, 400, "invalidValue")


def test_filter_on_members_and_excluded_members(scim: httpx.Client) -> None:
    user = create_user(scim, "f@example.com")
    group = create_group(scim, "Filtered", [user["id"]])
    create_group(scim, "Other")
    body = scim.get(
        "/Groups", params={"filter": f'members[value eq "{user["id"]}"]', "excludedAttributes": "members"}
    ).json()
    assert [r["id"] for r in body["Resources"]] == [group["id"]]
    assert "members" not in body["Resources"][0]


def test_user_shows_its_direct_groups(scim: httpx.Client) -> None:
    user = create_user(scim, "g@example.com")
    group = create_group(scim, "Shown", [user["id"]])
    groups = scim.get(f"/Users/{user['id']}").json()["groups"]
    assert groups == [
        {"value": group["id"], "$ref": group["meta"]["location"], "display": "Shown", "type": "direct"}
    ]
    found = scim.get("/Users", params={"filter": f'groups.value eq "{group["id"]}"'}).json()
    assert [r["id"] for r in found["Resources"]] == [user["id"]]


def test_delete_group_then_404(scim: httpx.Client) -> None:
    group = create_group(scim, "Doomed")
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Groups/{group['id']}"), 404)


def test_group_changes_emit_member_events(server: TestServer, tenant: TenantHandle) -> None:
    with scim_client(tenant) as scim:
        user = create_user(scim, "ev@example.com")
        group = create_group(scim, "Evented")
        patch(
            scim, f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
        )
        patch(scim, f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'})
    types = [
        r[0]
        for r in server.rows(
            "SELECT type FROM events WHERE subject_id = :g ORDER BY created_at", g=group["id"]
        )
    ]
    assert types == [
        "directory.group.created",
        "directory.group.member_added",
        "directory.group.member_removed",
    ]


def test_member_patch_with_a_stale_if_match_is_412_and_changes_nothing(scim: httpx.Client) -> None:
    user = create_user(scim, "late@example.com")
    group = create_group(scim, "Guarded")
    patch(scim, f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "Guarded 2"})
    response = patch(
        scim,
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
        **{"If-Match": group["meta"]["version"]},
    )
    assert_scim_error(response, 412)
    assert member_ids(scim, group["id"]) == []
