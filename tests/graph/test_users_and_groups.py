"""The Graph users and groups face: create, read, update, delete, lists with OData options, paging, counts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.server import TenantHandle, TestServer

EVENTUAL = {"ConsistencyLevel": "eventual"}


def make_user(c: httpx.Client, domain: str, alias: str, **extra: Any) -> dict[str, Any]:
    body = {
        "accountEnabled": True,
        "displayName": alias.replace(".", " ").title(),
        "mailNickname": alias.replace(".", ""),
        "userPrincipalName": f"{alias}@{domain}",
        "passwordProfile": {"password": "Correct-Horse-42"},
        **extra,
    }
    response = c.post("/v1.0/users", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_group(c: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    body = {
        "displayName": name,
        "mailNickname": name.lower().replace(" ", "-"),
        "mailEnabled": False,
        "securityEnabled": True,
        **extra,
    }
    response = c.post("/v1.0/groups", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_user_create_returns_entity_with_context_and_location_of_id(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(
            c, tenant.domain, "grace.hopper", jobTitle="Rear Admiral", otherMails=["g@navy.test"]
        )
    assert user["@odata.context"].endswith("/v1.0/$metadata#users/$entity")
    assert user["userPrincipalName"] == f"grace.hopper@{tenant.domain}"
    assert user["jobTitle"] == "Rear Admiral"
    assert "passwordProfile" not in user


def test_user_can_be_addressed_by_user_principal_name(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "alan.turing")
        got = c.get(f"/v1.0/users/ALAN.TURING@{tenant.domain.upper()}")
    assert got.status_code == 200
    assert got.json()["id"] == user["id"]


def test_patch_changes_only_the_given_properties_and_answers_204(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "edsger.dijkstra", jobTitle="Professor")
        patched = c.patch(f"/v1.0/users/{user['id']}", json={"department": "Computing Science"})
        assert patched.status_code == 204
        got = c.get(f"/v1.0/users/{user['id']}?$select=jobTitle,department,displayName").json()
    assert got["department"] == "Computing Science"
    assert got["jobTitle"] == "Professor"
    assert set(got) == {"@odata.context", "id", "jobTitle", "department", "displayName"}


def test_delete_removes_user_and_its_memberships(server: TestServer, tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "barbara.liskov")
        group = make_group(c, "Substitution")
        c.post(
            f"/v1.0/groups/{group['id']}/members/$ref",
            json={"@odata.id": f"https://x/v1.0/directoryObjects/{user['id']}"},
        )
        assert c.delete(f"/v1.0/users/{user['id']}").status_code == 204
        gone = c.get(f"/v1.0/users/{user['id']}")
        members = c.get(f"/v1.0/groups/{group['id']}/members").json()["value"]
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "Request_ResourceNotFound"
    assert members == []
    assert server.scalar("SELECT count(*) FROM memberships WHERE member_id = :u", u=user["id"]) == 0


def test_every_directory_change_is_in_the_audit_log(server: TestServer, tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "ken.thompson")
        group = make_group(c, "Unix")
        ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"}
        c.post(f"/v1.0/groups/{group['id']}/members/$ref", json=ref)
        c.patch(f"/v1.0/users/{user['id']}", json={"jobTitle": "Hacker"})
        c.delete(f"/v1.0/groups/{group['id']}/members/{user['id']}/$ref")
        c.delete(f"/v1.0/groups/{group['id']}")
        c.delete(f"/v1.0/users/{user['id']}")
    server.wait_for_jobs()
    activities = [
        r[0]
        for r in server.rows(
            "SELECT activity FROM audit_log WHERE tenant_id = :t AND target_type IN ('user', 'group') "
            "ORDER BY activity_at",
            t=tenant.tenant_id,
        )
    ]
    assert activities == [
        "Add user",
        "Add group",
        "Add member to group",
        "Update user",
        "Remove member from group",
        "Delete group",
        "Delete user",
    ]
    actor = server.scalar(
        "SELECT actor FROM audit_log WHERE target_id = :u AND activity = 'Add user'", u=user["id"]
    )
    assert '"type": "app"' in str(actor).replace("'", '"')


def test_filter_select_top_and_orderby_compose(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        for alias in ["ada.b", "ada.a", "ada.c", "bob.x"]:
            make_user(c, tenant.domain, alias, department="Eng" if alias != "ada.c" else "Ops")
        page = c.get(
            "/v1.0/users",
            params={
                "$filter": "startswith(userPrincipalName,'ada.') and department eq 'eng'",
                "$select": "userPrincipalName",
                "$orderby": "userPrincipalName desc",
                "$top": "5",
            },
        ).json()
    assert [u["userPrincipalName"].split("@")[0] for u in page["value"]] == ["ada.b", "ada.a"]
    assert page["@odata.context"].endswith("#users(userPrincipalName)")


def test_filter_on_collection_with_any(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        make_user(c, tenant.domain, "has.other", otherMails=["alt@example.org"])
        make_user(c, tenant.domain, "no.other")
        hits = c.get("/v1.0/users", params={"$filter": "otherMails/any(m:m eq 'ALT@example.org')"}).json()
        unified = make_group(c, "Team Unified", groupTypes=["Unified"], mailEnabled=True)
        make_group(c, "Plain Security")
        groups = c.get("/v1.0/groups", params={"$filter": "groupTypes/any(t:t eq 'Unified')"}).json()
    assert [u["userPrincipalName"].split("@")[0] for u in hits["value"]] == ["has.other"]
    assert [g["id"] for g in groups["value"]] == [unified["id"]]


def test_next_link_walks_every_user_exactly_once(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        created = {make_user(c, tenant.domain, f"pager{i:02d}")["id"] for i in range(13)}
        seen: list[str] = []
        url: str | None = "/v1.0/users?$top=4&$orderby=displayName&$select=displayName"
        pages = 0
        while url:
            body = c.get(url).json()
            pages += 1
            seen.extend(u["id"] for u in body["value"])
            url = body.get("@odata.nextLink")
            if url:
                assert url.startswith("http://127.0.0.1:")  # absolute, as Graph clients expect
    assert pages == 4
    assert sorted(seen) == sorted(created)


def test_count_needs_eventual_consistency(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        for i in range(3):
            make_user(c, tenant.domain, f"counted{i}")
        plain = c.get("/v1.0/users/$count")
        counted = c.get("/v1.0/users/$count", headers=EVENTUAL)
        filtered = c.get("/v1.0/users/$count?$filter=startswith(displayName,'Counted1')", headers=EVENTUAL)
        inline = c.get("/v1.0/users?$count=true&$top=1", headers=EVENTUAL).json()
    assert plain.status_code == 400
    assert counted.text == "3"
    assert counted.headers["content-type"].startswith("text/plain")
    assert filtered.text == "1"
    assert inline["@odata.count"] == 3
    assert len(inline["value"]) == 1


def test_search_matches_word_prefixes_of_display_name(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        make_user(c, tenant.domain, "margaret.hamilton")
        make_user(c, tenant.domain, "katherine.johnson")
        found = c.get('/v1.0/users?$search="displayName:hamil"', headers=EVENTUAL)
        refused = c.get('/v1.0/users?$search="displayName:hamil"')
    assert found.status_code == 200, found.text
    assert [u["displayName"] for u in found.json()["value"]] == ["Margaret Hamilton"]
    assert refused.status_code == 400


def test_group_crud_round_trip(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        group = make_group(c, "Red Team", description="Offence", visibility="Private")
        assert group["@odata.context"].endswith("#groups/$entity")
        assert (
            c.patch(f"/v1.0/groups/{group['id']}", json={"description": "Adversary emulation"}).status_code
            == 204
        )
        got = c.get(f"/v1.0/groups/{group['id']}").json()
        assert got["description"] == "Adversary emulation"
        assert got["visibility"] == "Private"
        assert c.delete(f"/v1.0/groups/{group['id']}").status_code == 204
        assert c.get(f"/v1.0/groups/{group['id']}").status_code == 404


@pytest.mark.parametrize("permission, status", [("User.Read.All", 200), ("Group.Read.All", 403)])
def test_reading_users_needs_a_user_read_permission(
    tenant: TenantHandle, permission: str, status: int
) -> None:
    with tenant.app(permission).client() as c:
        response = c.get("/v1.0/users")
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "Authorization_RequestDenied"
