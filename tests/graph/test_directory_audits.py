"""The directory audit log through Graph: every change, newest first, filterable, permission-checked."""

from __future__ import annotations

import json

from tests.graph.test_users_and_groups import make_group, make_user
from tests.support.server import TenantHandle, TestServer


def test_directory_audits_list_changes_newest_first_with_targets(
    server: TestServer, tenant: TenantHandle
) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "audited.user", jobTitle="Analyst")
        c.patch(f"/v1.0/users/{user['id']}", json={"jobTitle": "Lead"})
        make_group(c, "Audited")
        server.wait_for_jobs()
        page = c.get("/v1.0/auditLogs/directoryAudits").json()
        updates = c.get(
            "/v1.0/auditLogs/directoryAudits", params={"$filter": "activityDisplayName eq 'Update user'"}
        ).json()["value"]
        one = c.get(f"/v1.0/auditLogs/directoryAudits/{updates[0]['id']}").json()
    activities = [a["activityDisplayName"] for a in page["value"]]
    assert activities[:3] == ["Add group", "Update user", "Add user"]
    times = [a["activityDateTime"] for a in page["value"]]
    assert times == sorted(times, reverse=True)
    [update] = updates
    target = update["targetResources"][0]
    assert target["id"] == user["id"]
    assert target["type"] == "User"
    [change] = target["modifiedProperties"]
    assert change["displayName"] == "jobTitle"
    assert (json.loads(change["oldValue"]), json.loads(change["newValue"])) == ("Analyst", "Lead")
    assert update["initiatedBy"]["app"]["servicePrincipalId"]
    assert update["operationType"] == "Update"
    assert one["id"] == update["id"]


def test_directory_audits_never_carry_secrets(server: TestServer, tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "secretive")
        c.patch(f"/v1.0/users/{user['id']}", json={"passwordProfile": {"password": "Another-Secret-99"}})
        server.wait_for_jobs()
        body = c.get("/v1.0/auditLogs/directoryAudits").text
    assert "Correct-Horse-42" not in body
    assert "Another-Secret-99" not in body
    assert tenant.client_secret not in body


def test_directory_audits_need_an_audit_permission(tenant: TenantHandle) -> None:
    with tenant.app("User.Read.All").client() as c:
        denied = c.get("/v1.0/auditLogs/directoryAudits")
    with tenant.app("AuditLog.Read.All").client() as c:
        allowed = c.get("/v1.0/auditLogs/directoryAudits")
    assert denied.status_code == 403
    assert allowed.status_code == 200
