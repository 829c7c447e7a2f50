"""One model, two faces: what SCIM writes, Graph reads with the same attributes, and the other way round;
a change over Graph moves the SCIM ETag."""

from __future__ import annotations

from tests.graph.test_users_and_groups import make_group, make_user
from tests.scim.support import ENTERPRISE, create_group, create_user, patch, scim_client
from tests.support.server import TenantHandle


def test_user_created_over_scim_is_visible_over_graph_with_the_same_attributes(tenant: TenantHandle) -> None:
    with scim_client(tenant) as scim:
        user = create_user(
            scim,
            f"hedy@{tenant.domain}",
            displayName="Hedy Lamarr",
            name={"givenName": "Hedy", "familyName": "Lamarr"},
            title="Inventor",
            active=False,
            emails=[{"value": "hedy@mail.test", "type": "work", "primary": True}],
            schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            **{ENTERPRISE: {"department": "Radio", "organization": "MGM"}},
        )
    select = "id,userPrincipalName,displayName,givenName,surname,jobTitle,mail,accountEnabled"
    with tenant.client() as graph:
        got = graph.get(f"/v1.0/users/{user['id']}?$select={select}").json()
    assert got["id"] == user["id"]
    assert got["userPrincipalName"] == f"hedy@{tenant.domain}"
    assert got["displayName"] == "Hedy Lamarr"
    assert (got["givenName"], got["surname"]) == ("Hedy", "Lamarr")
    assert got["jobTitle"] == "Inventor"
    assert got["mail"] == "hedy@mail.test"
    assert got["accountEnabled"] is False
    with tenant.client() as graph:
        more = graph.get(f"/v1.0/users/{user['id']}?$select=department,companyName").json()
    assert (more["department"], more["companyName"]) == ("Radio", "MGM")


def test_user_created_over_graph_is_visible_over_scim_with_the_same_attributes(tenant: TenantHandle) -> None:
    with tenant.client() as graph:
        user = make_user(
            graph,
            tenant.domain,
            "katherine.johnson",
            givenName="Katherine",
            surname="Johnson",
            jobTitle="Mathematician",
            mail="kj@nasa.test",
            department="Flight Research",
        )
    with scim_client(tenant) as scim:
        got = scim.get(f"/Users/{user['id']}").json()
    assert got["userName"] == user["userPrincipalName"]
    assert got["displayName"] == user["displayName"]
    assert got["name"] == {"givenName": "Katherine", "familyName": "Johnson"}
    assert got["title"] == "Mathematician"
    assert got["active"] is True
    assert got["emails"] == [{"value": "kj@nasa.test", "type": "work", "primary": True}]
    assert got[ENTERPRISE] == {"department": "Flight Research"}


def test_group_memberships_are_shared_between_faces(tenant: TenantHandle) -> None:
    with scim_client(tenant) as scim, tenant.client() as graph:
        scim_user = create_user(scim, f"s@{tenant.domain}")
        group = create_group(scim, "Shared", [scim_user["id"]])
        graph_members = graph.get(f"/v1.0/groups/{group['id']}/members").json()["value"]
        assert [m["id"] for m in graph_members] == [scim_user["id"]]
        graph_user = make_user(graph, tenant.domain, "g.user")
        added = graph.post(
            f"/v1.0/groups/{group['id']}/members/$ref",
            json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{graph_user['id']}"},
        )
        assert added.status_code == 204, added.text
        got = scim.get(f"/Groups/{group['id']}").json()
        assert sorted(m["value"] for m in got["members"]) == sorted([scim_user["id"], graph_user["id"]])
        assert got["meta"]["version"] != group["meta"]["version"]


def test_a_graph_change_moves_the_scim_etag(tenant: TenantHandle) -> None:
    with scim_client(tenant) as scim, tenant.client() as graph:
        user = create_user(scim, f"etag@{tenant.domain}")
        assert graph.patch(f"/v1.0/users/{user['id']}", json={"jobTitle": "Changed"}).status_code == 204
        stale = scim.put(
            f"/Users/{user['id']}",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"etag@{tenant.domain}",
            },
            headers={"If-Match": user["meta"]["version"]},
        )
        assert stale.status_code == 412
        assert (
            patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "X"}).status_code
            == 200
        )


def test_group_created_over_graph_is_visible_over_scim(tenant: TenantHandle) -> None:
    with tenant.client() as graph, scim_client(tenant) as scim:
        group = make_group(graph, "From Graph")
        got = scim.get(f"/Groups/{group['id']}").json()
    assert got["displayName"] == "From Graph" and got["id"] == group["id"]
