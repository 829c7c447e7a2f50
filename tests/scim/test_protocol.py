"""The SCIM protocol around the resources: discovery documents, Bulk, /Me, and every failure — 401, 403,
404, 405, 413, malformed JSON — answered in SCIM's error dialect; the tenant is always the token's."""

from __future__ import annotations

import httpx
import pytest

from tests.scim.support import (
    ENTERPRISE,
    GROUP,
    USER,
    assert_scim_error,
    create_user,
    scim_client,
    scim_token,
    user_body,
)
from tests.support.server import TenantHandle, TestServer

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@pytest.fixture
def scim(tenant: TenantHandle) -> httpx.Client:
    return scim_client(tenant)


def test_service_provider_config_advertises_what_is_supported(scim: httpx.Client) -> None:
    config = scim.get("/ServiceProviderConfig").json()
    for feature in ("patch", "bulk", "filter", "sort", "etag", "changePassword"):
        assert config[feature]["supported"] is True, feature
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_and_schemas_are_listed_and_addressable(scim: httpx.Client) -> None:
    types = scim.get("/ResourceTypes").json()
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    user_type = scim.get("/ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    schemas = {s["id"] for s in scim.get("/Schemas").json()["Resources"]}
    assert schemas == {USER, ENTERPRISE, GROUP}
    assert scim.get(f"/Schemas/{USER}").json()["attributes"][0]["name"] == "userName"
    assert_scim_error(scim.get("/Schemas/urn:nope"), 404)


def test_me_is_not_supported(scim: httpx.Client) -> None:
    assert_scim_error(scim.get("/Me"), 501)


def test_unknown_path_is_a_scim_404(scim: httpx.Client) -> None:
    assert_scim_error(scim.get("/Widgets"), 404)


def test_method_not_allowed_is_a_scim_405(scim: httpx.Client) -> None:
    assert_scim_error(scim.post("/ServiceProviderConfig", json={}), 405)
    assert_scim_error(scim.delete("/Users"), 405)


def test_missing_token_is_a_scim_401(server: TestServer) -> None:
    response = httpx.get(f"{server.url}/scim/v2/Users")
    assert_scim_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_without_scim_permission_is_a_scim_403(tenant: TenantHandle) -> None:
    token = scim_token(tenant, None, "User.Read.All")
    response = httpx.get(f"{tenant.server.url}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    assert_scim_error(response, 403)


def test_graph_errors_stay_graph_errors(tenant: TenantHandle) -> None:
    with tenant.client() as graph:
        body = graph.get("/v1.0/users/00000000-0000-0000-0000-000000000000").json()
    assert body["error"]["code"] == "Request_ResourceNotFound"


def test_malformed_json_is_invalid_syntax(scim: httpx.Client) -> None:
    response = scim.post("/Users", content=b"{not json", headers={"Content-Type": "application/scim+json"})
    assert_scim_error(response, 400, "invalidSyntax")


def test_oversized_body_is_a_scim_413(scim: httpx.Client) -> None:
    huge = user_body("big@example.com", nickName="x" * 2_000_000)
    assert_scim_error(scim.post("/Users", json=huge), 413)


def test_the_tenant_is_the_tokens(server: TestServer) -> None:
    first, second = server.tenant(), server.tenant()
    with scim_client(first) as one, scim_client(second) as two:
        user = create_user(one, "mine@example.com")
        assert_scim_error(two.get(f"/Users/{user['id']}"), 404)
        assert two.get("/Users").json()["totalResults"] == 0
        assert_scim_error(two.delete(f"/Users/{user['id']}"), 404)
        assert one.get(f"/Users/{user['id']}").status_code == 200


def test_bulk_resolves_bulk_ids_and_reports_each_operation(scim: httpx.Client) -> None:
    response = scim.post(
        "/Bulk",
        json={
            "schemas": [BULK],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_body("bulk1@example.com")},
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "g1",
                    "data": {"schemas": [GROUP], "displayName": "Bulk", "members": [{"value": "bulkId:u1"}]},
                },
                {
                    "method": "PATCH",
                    "path": "/Users/bulkId:u1",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": "Bulked"}],
                    },
                },
            ],
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["Operations"]
    assert [r["status"] for r in results] == ["201", "201", "200"]
    user_id = results[0]["location"].rsplit("/", 1)[1]
    group = scim.get(results[1]["location"]).json()
    assert [m["value"] for m in group["members"]] == [user_id]
    assert scim.get(f"/Users/{user_id}").json()["title"] == "Bulked"


def test_bulk_stops_after_fail_on_errors(scim: httpx.Client) -> None:
    create_user(scim, "taken@example.com")
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": f"b{i}", "data": user_body("taken@example.com")}
        for i in range(3)
    ]
    operations.append(
        {"method": "POST", "path": "/Users", "bulkId": "ok", "data": user_body("ok@example.com")}
    )
    body = scim.post("/Bulk", json={"schemas": [BULK], "failOnErrors": 2, "Operations": operations}).json()
    assert [r["status"] for r in body["Operations"]] == ["409", "409"]
    assert body["Operations"][0]["response"]["scimType"] == "uniqueness"
    assert scim.get("/Users", params={"filter": 'userName eq "ok@example.com"'}).json()["totalResults"] == 0


def test_bulk_unknown_bulk_id_fails_that_operation_only(scim: httpx.Client) -> None:
    body = scim.post(
        "/Bulk",
        json={
            "schemas": [BULK],
            "Operations": [
                {"method": "DELETE", "path": "/Users/bulkId:nope"},
                {"method": "POST", "path": "/Users", "bulkId": "x", "data": user_body("after@example.com")},
            ],
        },
    ).json()
    assert [r["status"] for r in body["Operations"]] == ["409", "201"]
