"""The Graph identity protection face over HTTP: risky users (list with $filter on riskLevel / riskState /
riskLastUpdatedDateTime, get, history), confirmCompromised / confirmSafe / dismiss (204), risk detections,
the sign-in log, permissions, and bad input answered in Graph's dialect with nothing written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.protection.support import assess, make_user
from tests.support.server import TenantHandle, TestServer

RISK_ADMIN = ("IdentityRiskyUser.ReadWrite.All", "IdentityRiskEvent.Read.All", "AuditLog.Read.All")
TOR_EXIT = "185.220.101.1"


@pytest.fixture
def admin(server: TestServer) -> TenantHandle:
    return server.tenant(*RISK_ADMIN)


def values(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_confirm_compromised_lists_the_user_as_high_risk_with_history(
    server: TestServer, admin: TenantHandle
) -> None:
    user = make_user(server, admin.tenant_id)
    other = make_user(server, admin.tenant_id, "other")
    assess(server, admin.tenant_id, other, ip_address=TOR_EXIT)
    with admin.client() as c:
        r = c.post("/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [user.id]})
        assert r.status_code == 204 and r.content == b""
        high = values(c.get("/v1.0/identityProtection/riskyUsers", params={"$filter": "riskLevel eq 'high'"}))
        assert [u["id"] for u in high] == [user.id]
        assert high[0]["riskState"] == "confirmedCompromised"
        assert high[0]["riskDetail"] == "adminConfirmedUserCompromised"
        assert high[0]["userPrincipalName"] == user.user_principal_name
        at_risk = values(
            c.get("/v1.0/identityProtection/riskyUsers", params={"$filter": "riskState eq 'atRisk'"})
        )
        assert [u["id"] for u in at_risk] == [other.id]
        got = c.get(f"/v1.0/identityProtection/riskyUsers/{user.id}").json()
        assert got["riskLevel"] == "high"
        (item,) = values(c.get(f"/v1.0/identityProtection/riskyUsers/{user.id}/history"))
        assert item["userId"] == user.id and item["riskState"] == "confirmedCompromised"
        assert item["activity"] == {
            "detail": "adminConfirmedUserCompromised",
            "riskEventTypes": ["adminConfirmedUserCompromised"],
        }
        assert item["initiatedBy"]


def test_filter_on_risk_last_updated_date_time(server: TestServer, admin: TenantHandle) -> None:
    user = make_user(server, admin.tenant_id)
    with admin.client() as c:
        c.post("/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [user.id]})
        updated = c.get(f"/v1.0/identityProtection/riskyUsers/{user.id}").json()["riskLastUpdatedDateTime"]
        since = values(
            c.get(
                "/v1.0/identityProtection/riskyUsers",
                params={"$filter": f"riskLastUpdatedDateTime ge {updated}"},
            )
        )
        assert [u["id"] for u in since] == [user.id]
        later = values(
            c.get(
                "/v1.0/identityProtection/riskyUsers",
                params={"$filter": "riskLastUpdatedDateTime gt 2999-01-01T00:00:00Z"},
            )
        )
        assert later == []


def test_dismiss_and_confirm_safe_answer_204_and_set_level_none(
    server: TestServer, admin: TenantHandle
) -> None:
    first = make_user(server, admin.tenant_id)
    second = make_user(server, admin.tenant_id, "second")
    with admin.client() as c:
        c.post(
            "/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [first.id, second.id]}
        )
        assert (
            c.post("/v1.0/identityProtection/riskyUsers/dismiss", json={"userIds": [first.id]}).status_code
            == 204
        )
        assert (
            c.post(
                "/v1.0/identityProtection/riskyUsers/confirmSafe", json={"userIds": [second.id]}
            ).status_code
            == 204
        )
        states = {
            u["id"]: (u["riskLevel"], u["riskState"])
            for u in values(c.get("/v1.0/identityProtection/riskyUsers"))
        }
        assert states == {first.id: ("none", "dismissed"), second.id: ("none", "confirmedSafe")}
        # adminConfirmedAccountSafe came after unknownFutureValue: shown only to a client that asks for it
        assert (
            c.get(f"/v1.0/identityProtection/riskyUsers/{second.id}").json()["riskDetail"]
            == "unknownFutureValue"
        )
        prefer = {"Prefer": "include-unknown-enum-members"}
        got = c.get(f"/v1.0/identityProtection/riskyUsers/{second.id}", headers=prefer).json()
        assert got["riskDetail"] == "adminConfirmedAccountSafe"
        history = values(c.get(f"/v1.0/identityProtection/riskyUsers/{first.id}/history"))
        assert [h["riskState"] for h in history] == ["dismissed", "confirmedCompromised"]  # newest first


def test_risk_detections_and_sign_ins_are_listed(server: TestServer, admin: TenantHandle) -> None:
    user = make_user(server, admin.tenant_id)
    result = assess(server, admin.tenant_id, user, ip_address=TOR_EXIT)
    with admin.client() as c:
        (detection,) = values(c.get("/v1.0/identityProtection/riskDetections"))
        assert detection["riskEventType"] == "anonymizedIPAddress"
        assert detection["requestId"] == result.sign_in.id
        assert (detection["riskLevel"], detection["detectionTimingType"], detection["activity"]) == (
            "medium",
            "realtime",
            "signin",
        )
        assert c.get(f"/v1.0/identityProtection/riskDetections/{detection['id']}").json()["userId"] == user.id
        (sign_in,) = values(
            c.get("/v1.0/auditLogs/signIns", params={"$filter": "riskLevelDuringSignIn eq 'medium'"})
        )
        assert sign_in["id"] == result.sign_in.id
        assert sign_in["ipAddress"] == TOR_EXIT
        assert sign_in["riskEventTypes_v2"] == ["anonymizedIPAddress"]
        assert sign_in["riskEventTypes"] == ["anonymizedIPAddress"]
        assert sign_in["status"]["errorCode"] == 0
        assert sign_in["location"]["countryOrRegion"] == "DE"
        assert c.get(f"/v1.0/auditLogs/signIns/{sign_in['id']}").json()["userId"] == user.id


def test_actions_need_the_read_write_permission(server: TestServer, admin: TenantHandle) -> None:
    user = make_user(server, admin.tenant_id)
    reader = admin.app("IdentityRiskyUser.Read.All")
    with reader.client() as c:
        r = c.post("/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": [user.id]})
        assert error(r, 403)["code"] == "Authorization_RequestDenied"
        assert c.get("/v1.0/identityProtection/riskyUsers").status_code == 200
        assert c.get("/v1.0/auditLogs/signIns").status_code == 403
        assert c.get("/v1.0/identityProtection/riskDetections").status_code == 403


MISSING = "00000000-0000-0000-0000-000000000009"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"userIds": "not-a-list"},
        {"userIds": []},
        {"userIds": [42]},
        {"userIds": ["USER", MISSING]},
        {"userIds": ["USER", "not-a-guid"]},
        {"userIds": ["USER"], "extra": 1},
    ],
)
def test_bad_action_bodies_are_refused_and_write_nothing(
    server: TestServer, admin: TenantHandle, body: dict[str, Any]
) -> None:
    user = make_user(server, admin.tenant_id)
    if isinstance(body.get("userIds"), list):
        body = {**body, "userIds": [user.id if u == "USER" else u for u in body["userIds"]]}
    with admin.client() as c:
        r = c.post("/v1.0/identityProtection/riskyUsers/confirmCompromised", json=body)
        assert error(r, 400)["code"] == "Request_BadRequest"
        assert values(c.get("/v1.0/identityProtection/riskyUsers")) == []
        assert values(c.get("/v1.0/identityProtection/riskDetections")) == []


def test_bad_filter_and_unknown_ids_answer_in_graph_dialect(admin: TenantHandle) -> None:
    with admin.client() as c:
        e = error(c.get("/v1.0/identityProtection/riskyUsers", params={"$filter": "riskLevel eq"}), 400)
        assert e["code"] == "Request_BadRequest" and "innerError" in e
        e = error(c.get("/v1.0/identityProtection/riskyUsers", params={"$filter": "nosuch eq 'x'"}), 400)
        assert "nosuch" in e["message"]
        assert (
            error(c.get("/v1.0/identityProtection/riskyUsers/not-a-guid"), 404)["code"]
            == "Request_ResourceNotFound"
        )
        assert error(c.get(f"/v1.0/identityProtection/riskyUsers/{MISSING}/history"), 404)
        assert error(c.get(f"/v1.0/auditLogs/signIns/{MISSING}"), 404)
        r = c.post(
            "/v1.0/identityProtection/riskyUsers/dismiss",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert error(r, 400)["code"]
