"""The Graph conditional access face: policy and named-location CRUD, Graph's validation errors (and nothing
written), permissions, tenant isolation, the audit log, templates in one call, and a membership change
deciding the very next sign-in."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.graph.test_users_and_groups import make_group, make_user
from tests.support.server import TenantHandle, TestServer

BASE = "/v1.0/identity/conditionalAccess"
APP = "00000003-0000-0ff1-ce00-000000000000"
WRITER = ("Directory.ReadWrite.All", "Policy.ReadWrite.ConditionalAccess", "AuditLog.Read.All")


def mfa_policy(**conditions: Any) -> dict[str, Any]:
    return {
        "displayName": "Require MFA",
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            **conditions,
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


IP_LOCATION = {
    "@odata.type": "#microsoft.graph.ipNamedLocation",
    "displayName": "Head office",
    "isTrusted": True,
    "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
}


@pytest.fixture
def admin(server: TestServer) -> TenantHandle:
    return server.tenant(*WRITER)


def test_policy_crud_round_trip(admin: TenantHandle) -> None:
    with admin.client() as c:
        created = c.post(f"{BASE}/policies", json=mfa_policy())
        assert created.status_code == 201, created.text
        policy = created.json()
        fetched = c.get(f"{BASE}/policies/{policy['id']}").json()
        patched = c.patch(
            f"{BASE}/policies/{policy['id']}", json={"state": "disabled", "displayName": "Renamed"}
        )
        after = c.get(f"{BASE}/policies/{policy['id']}").json()
        listed = c.get(f"{BASE}/policies").json()["value"]
        deleted = c.delete(f"{BASE}/policies/{policy['id']}")
        gone = c.get(f"{BASE}/policies/{policy['id']}")
    assert policy["conditions"]["users"]["excludeUsers"] == []  # every property present, as Graph returns it
    assert fetched["conditions"] == policy["conditions"]
    assert patched.status_code == 204
    assert (after["state"], after["displayName"], after["grantControls"]) == (
        "disabled",
        "Renamed",
        policy["grantControls"],
    )
    assert after["modifiedDateTime"] is not None
    assert [p["id"] for p in listed] == [policy["id"]]
    assert deleted.status_code == 204
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "Request_ResourceNotFound"


def test_list_policies_filters_by_state_and_selects(admin: TenantHandle) -> None:
    with admin.client() as c:
        c.post(f"{BASE}/policies", json=mfa_policy())
        c.post(
            f"{BASE}/policies",
            json={**mfa_policy(), "displayName": "Report", "state": "enabledForReportingButNotEnforced"},
        )
        page = c.get(
            f"{BASE}/policies",
            params={
                "$filter": "state eq 'enabledForReportingButNotEnforced'",
                "$select": "displayName,state",
            },
        ).json()
    assert [(p["displayName"], p["state"]) for p in page["value"]] == [
        ("Report", "enabledForReportingButNotEnforced")
    ]
    assert set(page["value"][0]) == {"id", "displayName", "state"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**mfa_policy(), "displayName": ""}, "displayName"),
        ({k: v for k, v in mfa_policy().items() if k != "state"}, "'state' is required"),
        ({**mfa_policy(), "state": "on"}, "'on' is not a valid value of 'state'"),
        (
            {**mfa_policy(), "colour": "red"},
            "Property 'colour' does not exist on type 'microsoft.graph.conditionalAccessPolicy'",
        ),
        (
            mfa_policy(users={"includeUsers": ["All"], "excludeUser": []}),
            "Property 'excludeUser' does not exist on type 'microsoft.graph.conditionalAccessUsers'",
        ),
        (
            mfa_policy(users={"includeUsers": ["someone"]}),
            "'someone' in 'includeUsers' is not a valid object id",
        ),
        (mfa_policy(clientAppTypes=["fax"]), "'fax' is not a valid value of 'conditions.clientAppTypes'"),
        (mfa_policy(signInRiskLevels="high"), "expects a collection"),
        (mfa_policy(platforms={"includePlatforms": ["amiga"]}), "'amiga' is not a valid value"),
        (
            mfa_policy(locations={"includeLocations": ["6a3c2e1f-0000-4000-8000-000000000001"]}),
            "does not exist",
        ),
        (
            {**mfa_policy(), "grantControls": {"operator": "OR", "builtInControls": ["block", "mfa"]}},
            "'block' control cannot be combined",
        ),
        (
            {**mfa_policy(), "grantControls": {"operator": "XOR", "builtInControls": ["mfa"]}},
            "'XOR' is not a valid value",
        ),
        (
            {
                **mfa_policy(),
                "grantControls": {"operator": "OR", "builtInControls": ["mfa", "passwordChange"]},
            },
            "'passwordChange' must be combined with 'mfa' using the AND operator",
        ),
        (
            {
                **mfa_policy(),
                "grantControls": {"operator": "AND", "builtInControls": ["mfa", "passwordChange"]},
            },
            "'passwordChange' can only be used in a policy with 'userRiskLevels'",
        ),
        ({**mfa_policy(), "grantControls": None}, "needs 'grantControls' or 'sessionControls'"),
        (
            {
                **mfa_policy(applications={"includeUserActions": ["urn:user:registersecurityinfo"]}),
                "state": "enabledForReportingButNotEnforced",
            },
            "cannot be set to report-only",
        ),
        (
            mfa_policy(
                applications={
                    "includeApplications": ["All"],
                    "includeUserActions": ["urn:user:registerdevice"],
                }
            ),
            "Exactly one of",
        ),
        (
            {
                **mfa_policy(),
                "sessionControls": {"signInFrequency": {"isEnabled": True, "type": "hours", "value": 48}},
            },
            "between 1 and 23 hours",
        ),
    ],
)
def test_bad_policies_get_graph_errors_and_nothing_is_written(
    admin: TenantHandle, body: dict[str, Any], words: str
) -> None:
    with admin.client() as c:
        r = c.post(f"{BASE}/policies", json=body)
        listed = c.get(f"{BASE}/policies").json()["value"]
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "Request_BadRequest"
    assert words in error["message"]
    assert "request-id" in error["innerError"]
    assert listed == []


def test_bad_patch_leaves_the_policy_unchanged(admin: TenantHandle) -> None:
    with admin.client() as c:
        policy = c.post(f"{BASE}/policies", json=mfa_policy()).json()
        r = c.patch(
            f"{BASE}/policies/{policy['id']}",
            json={"grantControls": {"operator": "OR", "builtInControls": []}},
        )
        after = c.get(f"{BASE}/policies/{policy['id']}").json()
    assert r.status_code == 400
    assert after["grantControls"] == policy["grantControls"] and after["modifiedDateTime"] is None


def test_named_location_crud_and_subtype_properties(admin: TenantHandle) -> None:
    with admin.client() as c:
        ip = c.post(f"{BASE}/namedLocations", json=IP_LOCATION)
        country = c.post(
            f"{BASE}/namedLocations",
            json={
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "Embargo",
                "countriesAndRegions": ["KP", "IR"],
            },
        )
        assert ip.status_code == 201 and country.status_code == 201, (ip.text, country.text)
        patched = c.patch(
            f"{BASE}/namedLocations/{ip.json()['id']}",
            json={"@odata.type": "#microsoft.graph.ipNamedLocation", "isTrusted": False},
        )
        listed = c.get(f"{BASE}/namedLocations").json()["value"]
        wrong_type = c.patch(
            f"{BASE}/namedLocations/{ip.json()['id']}",
            json={"@odata.type": "#microsoft.graph.countryNamedLocation", "countriesAndRegions": ["FR"]},
        )
        deleted = c.delete(f"{BASE}/namedLocations/{country.json()['id']}")
        remaining = c.get(f"{BASE}/namedLocations").json()["value"]
    assert patched.status_code == 204
    by_name = {loc["displayName"]: loc for loc in listed}
    assert by_name["Head office"]["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert by_name["Head office"]["isTrusted"] is False
    assert "countriesAndRegions" not in by_name["Head office"]
    assert by_name["Embargo"]["countryLookupMethod"] == "clientIpAddress"
    assert by_name["Embargo"]["includeUnknownCountriesAndRegions"] is False
    assert "ipRanges" not in by_name["Embargo"]
    assert wrong_type.status_code == 400
    assert deleted.status_code == 204 and [loc["displayName"] for loc in remaining] == ["Head office"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({k: v for k, v in IP_LOCATION.items() if k != "@odata.type"}, "'@odata.type' is required"),
        (
            {
                **IP_LOCATION,
                "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "10.0.0.0/8"}],
            },
            "greater than /8",
        ),
        (
            {
                **IP_LOCATION,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "300.1.1.0/24"}
                ],
            },
            "not a valid CIDR",
        ),
        (
            {
                **IP_LOCATION,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "203.0.113.0/24"}
                ],
            },
            "not a valid IPv6 CIDR",
        ),
        ({**IP_LOCATION, "ipRanges": []}, "non-empty"),
        (
            {**IP_LOCATION, "countriesAndRegions": ["FR"]},
            "does not exist on type 'microsoft.graph.ipNamedLocation'",
        ),
        (
            {
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "x",
                "countriesAndRegions": ["France"],
            },
            "two-letter",
        ),
        (
            {
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "x",
                "countriesAndRegions": ["FR"],
                "countryLookupMethod": "gps",
            },
            "'gps' is not a valid value",
        ),
    ],
)
def test_bad_named_locations_get_graph_errors(admin: TenantHandle, body: dict[str, Any], words: str) -> None:
    with admin.client() as c:
        r = c.post(f"{BASE}/namedLocations", json=body)
        listed = c.get(f"{BASE}/namedLocations").json()["value"]
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]["message"]
    assert listed == []


def test_a_named_location_in_use_cannot_be_deleted(admin: TenantHandle) -> None:
    with admin.client() as c:
        location = c.post(f"{BASE}/namedLocations", json=IP_LOCATION).json()
        policy = c.post(
            f"{BASE}/policies",
            json=mfa_policy(locations={"includeLocations": ["All"], "excludeLocations": [location["id"]]}),
        )
        refused = c.delete(f"{BASE}/namedLocations/{location['id']}")
        c.delete(f"{BASE}/policies/{policy.json()['id']}")
        allowed = c.delete(f"{BASE}/namedLocations/{location['id']}")
    assert policy.status_code == 201
    assert refused.status_code == 400 and "Require MFA" in refused.json()["error"]["message"]
    assert allowed.status_code == 204


def test_read_permission_reads_but_cannot_write(server: TestServer, admin: TenantHandle) -> None:
    reader = admin.app("Policy.Read.All")
    with admin.client() as c:
        c.post(f"{BASE}/policies", json=mfa_policy())
    with reader.client() as c:
        listed = c.get(f"{BASE}/policies")
        write = c.post(f"{BASE}/policies", json=mfa_policy())
        evaluate = c.post(
            f"{BASE}/evaluate",
            json={
                "signInIdentity": {
                    "@odata.type": "#microsoft.graph.servicePrincipalSignIn",
                    "servicePrincipalId": "c65b94a5-0049-439a-a6fd-bce307077730",
                },
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": [APP],
                },
                "signInConditions": {},
            },
        )
    assert listed.status_code == 200 and len(listed.json()["value"]) == 1
    assert write.status_code == 403 and write.json()["error"]["code"] == "Authorization_RequestDenied"
    assert evaluate.status_code == 200


def test_directory_permissions_do_not_reach_conditional_access(tenant: TenantHandle) -> None:
    with tenant.client() as c:  # Directory.ReadWrite.All only
        assert c.get(f"{BASE}/policies").status_code == 403
        assert c.get(f"{BASE}/namedLocations").status_code == 403


def test_tenants_see_only_their_own_policies(server: TestServer, admin: TenantHandle) -> None:
    other = server.tenant(*WRITER)
    with admin.client() as c:
        mine = c.post(f"{BASE}/policies", json=mfa_policy()).json()
    with other.client() as c:
        listed = c.get(f"{BASE}/policies").json()["value"]
        fetched = c.get(f"{BASE}/policies/{mine['id']}")
        patched = c.patch(f"{BASE}/policies/{mine['id']}", json={"state": "disabled"})
        deleted = c.delete(f"{BASE}/policies/{mine['id']}")
    assert listed == []
    assert (fetched.status_code, patched.status_code, deleted.status_code) == (404, 404, 404)


def test_changes_are_audited(server: TestServer, admin: TenantHandle) -> None:
    with admin.client() as c:
        policy = c.post(f"{BASE}/policies", json=mfa_policy()).json()
        c.patch(f"{BASE}/policies/{policy['id']}", json={"state": "disabled"})
        location = c.post(f"{BASE}/namedLocations", json=IP_LOCATION).json()
        c.delete(f"{BASE}/policies/{policy['id']}")
        server.wait_for_jobs()
        audits = c.get("/v1.0/auditLogs/directoryAudits").json()["value"]
    activities = {(a["activityDisplayName"], a["targetResources"][0]["id"]) for a in audits}
    assert ("Add conditional access policy", policy["id"]) in activities
    assert ("Update conditional access policy", policy["id"]) in activities
    assert ("Delete conditional access policy", policy["id"]) in activities
    assert ("Add named location", location["id"]) in activities


def test_templates_are_listed_and_created_in_one_call(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "bg")
        templates = c.get(f"{BASE}/templates").json()["value"]
        one = c.get(f"{BASE}/templates/{templates[0]['id']}")
        created = c.post(f"{BASE}/templates/createPolicies", json={"excludeUsers": [user["id"]]})
        policies = c.get(f"{BASE}/policies").json()["value"]
        bad = c.post(f"{BASE}/templates/createPolicies", json={"templateIds": ["nope"]})
    names = {t["name"] for t in templates}
    assert names == {
        "Block legacy authentication",
        "Require multifactor authentication for admins",
        "Block access for high user risk",
        "Require multifactor authentication for risky sign-ins",
    }
    assert one.status_code == 200 and one.json()["details"]["conditions"]
    assert created.status_code == 201 and len(created.json()["value"]) == 4
    assert {p["templateId"] for p in policies} == {t["id"] for t in templates}
    assert all(p["state"] == "enabledForReportingButNotEnforced" for p in policies)
    assert all(user["id"] in p["conditions"]["users"]["excludeUsers"] for p in policies)
    assert bad.status_code == 400 and len(policies) == 4


def what_if(c: httpx.Client, user_id: str, **conditions: Any) -> dict[str, Any]:
    r = c.post(
        f"{BASE}/evaluate",
        json={
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user_id},
            "signInContext": {
                "@odata.type": "#microsoft.graph.applicationContext",
                "includeApplications": [APP],
            },
            "signInConditions": conditions,
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_membership_change_decides_the_next_sign_in_at_once(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "mover")
        outer = make_group(c, "Contractors")
        inner = make_group(c, "Contractors EU")
        c.post(
            f"/v1.0/groups/{outer['id']}/members/$ref",
            json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{inner['id']}"},
        )
        block = {
            **mfa_policy(),
            "displayName": "Block contractors",
            "conditions": {
                "users": {"includeGroups": [outer["id"]]},
                "applications": {"includeApplications": ["All"]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        }
        assert c.post(f"{BASE}/policies", json=block).status_code == 201
        before = what_if(c, user["id"])["@trustplane.decision"]["outcome"]
        assert (
            c.post(
                f"/v1.0/groups/{inner['id']}/members/$ref",
                json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"},
            ).status_code
            == 204
        )
        joined = what_if(c, user["id"])["@trustplane.decision"]["outcome"]
        assert c.delete(f"/v1.0/groups/{inner['id']}/members/{user['id']}/$ref").status_code == 204
        left = what_if(c, user["id"])["@trustplane.decision"]["outcome"]
    assert (before, joined, left) == ("grant", "block", "grant")


def test_a_policy_change_decides_the_next_sign_in_at_once(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "u")
        policy = c.post(f"{BASE}/policies", json=mfa_policy()).json()
        first = what_if(c, user["id"])["@trustplane.decision"]
        c.patch(
            f"{BASE}/policies/{policy['id']}",
            json={"grantControls": {"operator": "OR", "builtInControls": ["block"]}},
        )
        second = what_if(c, user["id"])["@trustplane.decision"]
    assert (first["outcome"], first["requiredControls"]) == ("challenge", ["mfa"])
    assert second["outcome"] == "block" and second["blockedBy"] == [policy["id"]]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "'signInIdentity' is required"),
        (
            {
                "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn"},
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": [APP],
                },
                "signInConditions": {},
            },
            400,
            "needs 'userId'",
        ),
        (
            {
                "signInIdentity": {
                    "@odata.type": "#microsoft.graph.userSignIn",
                    "userId": "0b5c6b1e-0000-4000-8000-000000000009",
                },
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": [APP],
                },
                "signInConditions": {},
            },
            404,
            "does not exist",
        ),
        (
            {
                "signInIdentity": {
                    "@odata.type": "#microsoft.graph.servicePrincipalSignIn",
                    "servicePrincipalId": "c65b94a5-0049-439a-a6fd-bce307077730",
                },
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": [APP],
                },
                "signInConditions": {"devicePlatform": "amiga"},
            },
            400,
            "'amiga' is not a valid value",
        ),
        (
            {
                "signInIdentity": {
                    "@odata.type": "#microsoft.graph.servicePrincipalSignIn",
                    "servicePrincipalId": "c65b94a5-0049-439a-a6fd-bce307077730",
                },
                "signInContext": {"@odata.type": "#microsoft.graph.somethingElse"},
                "signInConditions": {},
            },
            400,
            "'signInContext' needs",
        ),
        (
            {
                "signInIdentity": {
                    "@odata.type": "#microsoft.graph.servicePrincipalSignIn",
                    "servicePrincipalId": "c65b94a5-0049-439a-a6fd-bce307077730",
                },
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": [APP],
                },
                "signInConditions": {"deviceInfo": {"colour": "red"}},
            },
            400,
            "Property 'colour' does not exist on type 'microsoft.graph.deviceInfo'",
        ),
    ],
)
def test_bad_what_if_requests_get_graph_errors(
    admin: TenantHandle, body: dict[str, Any], status: int, words: str
) -> None:
    with admin.client() as c:
        r = c.post(f"{BASE}/evaluate", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_patch_merges_nested_conditions_as_entras_device_filter_example(admin: TenantHandle) -> None:
    with admin.client() as c:
        policy = c.post(
            f"{BASE}/policies", json=mfa_policy(users={"includeUsers": ["All"], "excludeGroups": []})
        ).json()
        patch = {
            "conditions": {
                "devices": {
                    "deviceFilter": {"mode": "exclude", "rule": 'device.extensionAttribute1 -ne "SAW"'}
                }
            }
        }
        r = c.patch(f"{BASE}/policies/{policy['id']}", json=patch)
        after = c.get(f"{BASE}/policies/{policy['id']}").json()
    assert r.status_code == 204, r.text
    assert after["conditions"]["devices"]["deviceFilter"]["rule"] == 'device.extensionAttribute1 -ne "SAW"'
    assert after["conditions"]["users"] == policy["conditions"]["users"]
    assert after["conditions"]["applications"] == policy["conditions"]["applications"]


def test_a_policy_cannot_reference_another_tenants_named_location(
    server: TestServer, admin: TenantHandle
) -> None:
    other = server.tenant(*WRITER)
    with other.client() as c:
        theirs = c.post(f"{BASE}/namedLocations", json=IP_LOCATION).json()
    with admin.client() as c:
        r = c.post(f"{BASE}/policies", json=mfa_policy(locations={"includeLocations": [theirs["id"]]}))
        fetched = c.get(f"{BASE}/namedLocations/{theirs['id']}")
    assert r.status_code == 400 and "does not exist" in r.json()["error"]["message"]
    assert fetched.status_code == 404


def test_a_policy_for_no_one_is_valid_and_never_applies(admin: TenantHandle) -> None:
    with admin.client() as c:
        user = make_user(c, admin.domain, "nobody")
        created = c.post(f"{BASE}/policies", json=mfa_policy(users={"includeUsers": ["None"]}))
        result = what_if(c, user["id"])
        empty = c.post(f"{BASE}/policies", json=mfa_policy(users={"includeUsers": []}))
    assert created.status_code == 201, created.text
    assert [(v["policyApplies"], v["analysisReasons"]) for v in result["value"]] == [(False, "users")]
    assert empty.status_code == 400 and "must include someone" in empty.json()["error"]["message"]
