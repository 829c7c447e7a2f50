"""The Microsoft Entra ID provisioning dialect, tolerated per client (the SCIM token's ``scim_dialect``
setting, ``trustplane tokens create --scim-dialect entra``) and refused with the RFC's errors by default: a
replay of the request sequence Entra's provisioning service sends, then one test per quirk."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.scim.support import (
    ENTERPRISE,
    ENTRA_GROUP,
    GROUP,
    PATCH_OP,
    USER,
    assert_scim_error,
    create_group,
    create_user,
    patch,
    scim_client,
)
from tests.support.server import TenantHandle, TestServer
from tests.test_cli import cli


def entra_user(user_name: str) -> dict[str, Any]:
    """A user as Entra's provisioning service creates it (its documented request, values renamed)."""
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "roles": [],
    }


def entra_group(name: str, members: list[str]) -> dict[str, Any]:
    return {
        "schemas": [GROUP, ENTRA_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": name,
        "meta": {"resourceType": "Group"},
        "members": [{"value": m} for m in members],
    }


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


@pytest.fixture
def entra(tenant: TenantHandle) -> httpx.Client:
    return scim_client(tenant, "entra")


@pytest.fixture
def strict(tenant: TenantHandle) -> httpx.Client:
    return scim_client(tenant)


def test_entra_replay_passes_in_the_tolerant_dialect(entra: httpx.Client) -> None:
    user_name = "test.user@contoso.test"
    created = entra.post("/Users", json=entra_user(user_name))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    found = entra.get("/Users", params={"filter": f'userName eq "{user_name}"'}).json()
    assert [r["id"] for r in found["Resources"]] == [user_id]
    by_external = entra.get("/Users", params={"filter": f'externalId eq "{created.json()["externalId"]}"'})
    assert by_external.json()["totalResults"] == 1

    disabled = entra.patch(
        f"/Users/{user_id}", json=ops({"op": "Replace", "path": "active", "value": "False"})
    )
    assert disabled.status_code == 200, disabled.text
    assert entra.get(f"/Users/{user_id}").json()["active"] is False  # soft-deleted users stay readable

    pathless = entra.patch(
        f"/Users/{user_id}",
        json=ops(
            {
                "op": "Replace",
                "value": {
                    "displayName": "Renamed User",
                    "name.givenName": "Renamed",
                    f"{ENTERPRISE}:employeeNumber": "42",
                },
            }
        ),
    )
    assert pathless.status_code == 200, pathless.text
    body = pathless.json()
    assert body["displayName"] == "Renamed User"
    assert body["name"]["givenName"] == "Renamed"
    assert body[ENTERPRISE]["employeeNumber"] == "42"

    multi = entra.patch(
        f"/Users/{user_id}",
        json=ops(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@contoso.test"},
            {"op": "Add", "path": "nickName", "value": "tu"},
        ),
    )
    assert multi.json()["emails"][0]["value"] == "new@contoso.test"

    group = entra.post("/Groups", json=entra_group("Entra Group", [user_id]))
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    looked_up = entra.get(
        "/Groups", params={"filter": 'displayName eq "Entra Group"', "excludedAttributes": "members"}
    ).json()
    assert [r["id"] for r in looked_up["Resources"]] == [group_id]
    assert "members" not in looked_up["Resources"][0]

    second = entra.post("/Users", json=entra_user("second.user@contoso.test")).json()["id"]
    add = entra.patch(
        f"/Groups/{group_id}",
        json=ops({"op": "Add", "path": "members", "value": [{"$ref": None, "value": second}]}),
    )
    assert add.status_code == 204, add.text
    remove = entra.patch(
        f"/Groups/{group_id}", json=ops({"op": "Remove", "path": "members", "value": [{"value": user_id}]})
    )
    assert remove.status_code == 204, remove.text
    members = [m["value"] for m in entra.get(f"/Groups/{group_id}").json()["members"]]
    assert members == [second]

    assert entra.delete(f"/Users/{user_id}").status_code == 204
    assert_scim_error(entra.get(f"/Users/{user_id}"), 404)
    assert_scim_error(entra.get(f"/Users/{uuid.uuid4()}"), 404)  # "Test Connection" asks for a random id
    assert entra.delete(f"/Groups/{group_id}").status_code == 204


def test_entra_replay_is_refused_in_the_strict_dialect_with_scim_errors(strict: httpx.Client) -> None:
    created = strict.post("/Users", json=entra_user("strict.user@contoso.test"))
    assert created.status_code == 201, created.text  # "roles": [] is unassigned, meta is read-only: fine
    user_id = created.json()["id"]
    disable = strict.patch(
        f"/Users/{user_id}", json=ops({"op": "Replace", "path": "active", "value": "False"})
    )
    assert_scim_error(disable, 400, "invalidSyntax")
    pathless = strict.patch(
        f"/Users/{user_id}", json=ops({"op": "Replace", "value": {"name.givenName": "Renamed"}})
    )
    assert_scim_error(pathless, 400, "invalidSyntax")
    assert_scim_error(
        strict.post("/Groups", json=entra_group("Strict Group", [user_id])), 400, "invalidSyntax"
    )
    group = create_group(strict, "Strict Group", [user_id])
    remove = strict.patch(
        f"/Groups/{group['id']}", json=ops({"op": "Remove", "path": "members", "value": [{"value": user_id}]})
    )
    assert_scim_error(remove, 400, "invalidSyntax")  # "Remove"; lower-cased it is invalidValue (below)
    assert [m["value"] for m in strict.get(f"/Groups/{group['id']}").json()["members"]] == [user_id]
    assert strict.get(f"/Users/{user_id}").json()["active"] is True


# ---------------------------------------------------------------- one test per quirk


def test_capitalised_op_is_accepted_in_entra_dialect_only(entra: httpx.Client, strict: httpx.Client) -> None:
    for client, expected in ((entra, 200), (strict, 400)):
        user = create_user(client, f"op-{expected}@contoso.test")
        response = patch(client, f"/Users/{user['id']}", {"op": "Add", "path": "title", "value": "T"})
        assert response.status_code == expected, response.text
    assert_scim_error(
        patch(strict, f"/Users/{user['id']}", {"op": "Replace", "path": "title", "value": "T"}),
        400,
        "invalidSyntax",
    )


def test_string_booleans_are_accepted_in_entra_dialect_only(
    entra: httpx.Client, strict: httpx.Client
) -> None:
    user = create_user(entra, "bool@contoso.test")
    response = patch(entra, f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": "False"})
    assert response.json()["active"] is False
    response = patch(entra, f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": "True"})
    assert response.json()["active"] is True
    other = create_user(strict, "bool2@contoso.test")
    refused = patch(strict, f"/Users/{other['id']}", {"op": "replace", "path": "active", "value": "False"})
    assert_scim_error(refused, 400, "invalidValue")


def test_pathless_patch_with_dotted_and_urn_keys(entra: httpx.Client, strict: httpx.Client) -> None:
    value = {"name.familyName": "Dotted", f"{ENTERPRISE}:costCenter": "CC-1"}
    user = create_user(entra, "dotted@contoso.test")
    body = patch(entra, f"/Users/{user['id']}", {"op": "replace", "value": value}).json()
    assert body["name"]["familyName"] == "Dotted" and body[ENTERPRISE]["costCenter"] == "CC-1"
    other = create_user(strict, "dotted2@contoso.test")
    assert_scim_error(
        patch(strict, f"/Users/{other['id']}", {"op": "replace", "value": value}), 400, "invalidSyntax"
    )


def test_member_removal_with_a_value_list(entra: httpx.Client, strict: httpx.Client) -> None:
    for client, expected in ((entra, 204), (strict, 400)):
        a = create_user(client, f"rm-a-{expected}@contoso.test")
        b = create_user(client, f"rm-b-{expected}@contoso.test")
        group = create_group(client, f"Removal {expected}", [a["id"], b["id"]])
        response = patch(
            client,
            f"/Groups/{group['id']}",
            {"op": "remove", "path": "members", "value": [{"value": a["id"]}]},
        )
        assert response.status_code == expected, response.text
        left = sorted(m["value"] for m in client.get(f"/Groups/{group['id']}").json()["members"])
        assert left == ([b["id"]] if expected == 204 else sorted([a["id"], b["id"]]))


def test_member_add_with_null_ref(entra: httpx.Client, strict: httpx.Client) -> None:
    """``"$ref": null`` is an unassigned sub-attribute, which the RFC allows: both dialects accept it."""
    for client in (entra, strict):
        user = create_user(client, f"ref-{id(client)}@contoso.test")
        group = create_group(client, f"Ref {id(client)}")
        response = patch(
            client,
            f"/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"$ref": None, "value": user["id"]}]},
        )
        assert response.status_code == 204, response.text


def test_microsoft_group_schema_urn(entra: httpx.Client, strict: httpx.Client) -> None:
    body = {"schemas": [GROUP, ENTRA_GROUP], "displayName": "ADSCIM"}
    assert entra.post("/Groups", json=body).status_code == 201
    refused = assert_scim_error(strict.post("/Groups", json=body), 400, "invalidSyntax")
    assert ENTRA_GROUP in refused["detail"]


def test_excluded_attributes_members_on_group_lookup(entra: httpx.Client) -> None:
    user = create_user(entra, "ex@contoso.test")
    create_group(entra, "Excluded", [user["id"]])
    found = entra.get(
        "/Groups", params={"filter": 'displayName eq "Excluded"', "excludedAttributes": "members"}
    )
    resource = found.json()["Resources"][0]
    assert "members" not in resource and resource["displayName"] == "Excluded"


def test_unmatched_value_filter_creates_the_element_in_entra_dialect(
    entra: httpx.Client, strict: httpx.Client
) -> None:
    op = {"op": "replace", "path": 'emails[type eq "work"].value', "value": "made@contoso.test"}
    user = create_user(entra, "nomail@contoso.test")
    assert patch(entra, f"/Users/{user['id']}", op).json()["emails"] == [
        {"type": "work", "value": "made@contoso.test"}
    ]
    other = create_user(strict, "nomail2@contoso.test")
    assert_scim_error(patch(strict, f"/Users/{other['id']}", op), 400, "noTarget")


def test_unknown_attributes_are_ignored_in_entra_dialect(entra: httpx.Client, strict: httpx.Client) -> None:
    body = {"schemas": [USER], "userName": "roles@contoso.test", "roles": [{"value": "admin"}]}
    assert entra.post("/Users", json=body).status_code == 201
    assert_scim_error(
        strict.post("/Users", json={**body, "userName": "roles2@contoso.test"}), 400, "invalidSyntax"
    )


def test_cli_creates_a_token_in_the_entra_dialect(server: TestServer, tenant: TenantHandle) -> None:
    result = cli(
        server,
        "tokens",
        "create",
        "--tenant",
        tenant.domain,
        "--name",
        "entra provisioning",
        "--permission",
        "Scim.ReadWrite.All",
        "--scim-dialect",
        "entra",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)["token"]
    with httpx.Client(
        base_url=f"{server.url}/scim/v2", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        user = create_user(client, "cli@contoso.test")
        response = patch(
            client, f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"}
        )
        assert response.status_code == 200, response.text
