"""Show point 4, ingestion of sign-in events from other identity providers over HTTP: events are assessed
like TrustPlane's own sign-ins, bad events get clear per-event errors while the good ones are stored, a
malformed batch is refused whole with nothing written, and a replayed batch changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.protection.support import CHROME, make_user
from tests.support.server import TenantHandle, TestServer

PATH = "/protection/v1/signIns/batch"
PERMISSIONS = ("IdentityRiskEvent.ReadWrite.All", "AuditLog.Read.All", "IdentityRiskyUser.Read.All")
TABLES = (
    "sign_ins",
    "risk_detections",
    "risky_users",
    "risky_user_history",
    "protection_feature_counts",
    "protection_user_counts",
    "events",
)


@pytest.fixture
def idp(server: TestServer) -> TenantHandle:
    return server.tenant(*PERMISSIONS)


def event(event_id: str, upn: str, **values: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "createdDateTime": values.pop("at", "2026-02-01T08:00:00Z"),
        "userPrincipalName": upn,
        "ipAddress": values.pop("ip", "81.2.69.160"),
        "userAgent": CHROME,
        "appDisplayName": "Payroll",
        "status": {"errorCode": 0},
        **values,
    }


def counts(server: TestServer, tenant_id: str) -> dict[str, int]:
    server.wait_for_jobs()
    return {t: server.scalar(f"SELECT count(*) FROM {t} WHERE tenant_id = :t", t=tenant_id) for t in TABLES}


def post(c: httpx.Client, body: Any) -> httpx.Response:
    return c.post(PATH, json=body)


def test_events_are_assessed_and_listed_in_the_sign_in_log(server: TestServer, idp: TenantHandle) -> None:
    user = make_user(server, idp.tenant_id)
    upn = user.user_principal_name
    batch = {
        "source": "okta-prod",
        "events": [
            event(
                "e1",
                upn,
                location={
                    "city": "London",
                    "countryOrRegion": "gb",
                    "geoCoordinates": {"latitude": 51.5, "longitude": -0.12},
                },
            ),
            event("e2", upn, at="2026-02-01T09:00:00Z", ip="185.220.101.1"),
            event(
                "e3",
                "nobody@elsewhere.example",
                at="2026-02-01T07:00:00Z",
                status={"errorCode": 50034, "failureReason": "User not found"},
            ),
        ],
    }
    with idp.client() as c:
        r = post(c, batch)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["received"], body["created"], body["duplicates"], body["errors"]) == (3, 3, 0, 0)
        assert [x["eventId"] for x in body["results"]] == ["e1", "e2", "e3"]
        assert body["results"][1]["riskEventTypes"] == ["anonymizedIPAddress"]
        log = c.get("/v1.0/auditLogs/signIns").json()["value"]
        assert [s["id"] for s in log] == [body["results"][i]["id"] for i in (1, 0, 2)]  # newest first
        assert log[1]["location"]["city"] == "London" and log[1]["location"]["countryOrRegion"] == "GB"
        assert log[2]["status"] == {
            "errorCode": 50034,
            "failureReason": "User not found",
            "additionalDetails": None,
        }
        assert log[2]["userId"] is None
        risky = c.get(f"/v1.0/identityProtection/riskyUsers/{user.id}").json()
        assert (risky["riskLevel"], risky["riskState"]) == ("medium", "atRisk")


def test_a_replayed_batch_changes_nothing(server: TestServer, idp: TenantHandle) -> None:
    user = make_user(server, idp.tenant_id)
    batch = {
        "source": "adfs",
        "events": [
            event(f"r{i}", user.user_principal_name, at=f"2026-02-0{i + 1}T08:00:00Z") for i in range(4)
        ]
        + [event("r9", user.user_principal_name, ip="185.220.101.1")],
    }
    with idp.client() as c:
        first = post(c, batch).json()
        assert first["created"] == 5
        before = counts(server, idp.tenant_id)
        log_before = c.get("/v1.0/auditLogs/signIns").content
        again = post(c, batch).json()
        assert (again["created"], again["duplicates"], again["errors"]) == (0, 5, 0)
        assert [x["id"] for x in again["results"]] == [x["id"] for x in first["results"]]
        assert counts(server, idp.tenant_id) == before
        assert c.get("/v1.0/auditLogs/signIns").content == log_before


def test_the_same_event_id_from_another_source_is_another_event(
    server: TestServer, idp: TenantHandle
) -> None:
    user = make_user(server, idp.tenant_id)
    with idp.client() as c:
        assert (
            post(c, {"source": "okta", "events": [event("x1", user.user_principal_name)]}).json()["created"]
            == 1
        )
        assert (
            post(c, {"source": "ping", "events": [event("x1", user.user_principal_name)]}).json()["created"]
            == 1
        )


def test_a_repeated_event_within_a_batch_is_a_duplicate(server: TestServer, idp: TenantHandle) -> None:
    user = make_user(server, idp.tenant_id)
    with idp.client() as c:
        body = post(c, {"source": "okta", "events": [event("d1", user.user_principal_name)] * 2}).json()
        assert [x["status"] for x in body["results"]] == ["created", "duplicate"]
        assert body["results"][0]["id"] == body["results"][1]["id"]
    assert counts(server, idp.tenant_id)["sign_ins"] == 1


BAD_EVENTS: list[tuple[Any, str]] = [
    ("not an object", "must be a JSON object"),
    ({"createdDateTime": "2026-02-01T08:00:00Z", "userPrincipalName": "a@b.c"}, "'eventId' is required"),
    ({"eventId": "b2", "createdDateTime": "yesterday", "userPrincipalName": "a@b.c"}, "not an ISO 8601"),
    ({"eventId": "b3", "createdDateTime": "2026-02-01T08:00:00", "userPrincipalName": "a@b.c"}, "time zone"),
    (
        {"eventId": "b4", "createdDateTime": "2026-02-01T08:00:00Z"},
        "'userPrincipalName' (or 'userId') is required",
    ),
    (
        {
            "eventId": "b5",
            "createdDateTime": "2026-02-01T08:00:00Z",
            "userPrincipalName": "a@b.c",
            "ipAddress": "999.1.1.1",
        },
        "not an IP address",
    ),
    (
        {
            "eventId": "b6",
            "createdDateTime": "2026-02-01T08:00:00Z",
            "userPrincipalName": "a@b.c",
            "riskLevel": "high",
        },
        "'riskLevel' is not a property",
    ),
    (
        {
            "eventId": "b7",
            "createdDateTime": "2026-02-01T08:00:00Z",
            "userPrincipalName": "a@b.c",
            "location": {"geoCoordinates": {"latitude": 123, "longitude": 0}},
        },
        "latitude' must be a number from -90 to 90",
    ),
    (
        {
            "eventId": "b8",
            "createdDateTime": "2026-02-01T08:00:00Z",
            "userPrincipalName": "a@b.c",
            "status": {"errorCode": "0"},
        },
        "must be an integer",
    ),
    (
        {"eventId": "b9", "createdDateTime": "2026-02-01T08:00:00Z", "userId": "not-a-guid"},
        "'userId' must be a GUID",
    ),
]


def test_bad_events_get_per_event_errors_and_the_good_ones_are_stored(
    server: TestServer, idp: TenantHandle
) -> None:
    user = make_user(server, idp.tenant_id)
    events = [event("good", user.user_principal_name)] + [bad for bad, _ in BAD_EVENTS]
    with idp.client() as c:
        body = post(c, {"source": "okta", "events": events}).json()
    assert (body["created"], body["errors"]) == (1, len(BAD_EVENTS))
    assert body["results"][0]["status"] == "created"
    for result, (_, expected) in zip(body["results"][1:], BAD_EVENTS, strict=True):
        assert result["status"] == "error" and result["error"]["code"] == "invalidEvent"
        assert expected in result["error"]["message"], (expected, result)
    assert counts(server, idp.tenant_id)["sign_ins"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"events": [{}]}, "'source' is required"),
        ({"source": "okta"}, "'events' must be a non-empty collection"),
        ({"source": "okta", "events": []}, "'events' must be a non-empty collection"),
        ({"source": "okta", "events": {"a": 1}}, "'events' must be a non-empty collection"),
        ({"source": "has spaces", "events": [{}]}, "'source' is required"),
        ({"source": "trustplane", "events": [{}]}, "name the other provider"),
        ({"source": "okta", "events": [{}], "extra": True}, "'extra' is not a property"),
        ({"source": "okta", "events": [{}] * 1001}, "at most 1000 events"),
    ],
)
def test_a_malformed_batch_is_refused_whole(
    server: TestServer, idp: TenantHandle, body: Any, message: str
) -> None:
    with idp.client() as c:
        r = post(c, body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]
    assert counts(server, idp.tenant_id)["sign_ins"] == 0


def test_invalid_json_and_missing_permission_are_refused(server: TestServer, idp: TenantHandle) -> None:
    with idp.client() as c:
        r = c.post(PATH, content=b"[1,", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    reader = idp.app("AuditLog.Read.All")
    with reader.client() as c:
        assert post(c, {"source": "okta", "events": [event("p1", "a@b.c")]}).status_code == 403
    assert counts(server, idp.tenant_id)["sign_ins"] == 0


def test_an_event_naming_another_tenants_user_stays_in_the_callers_tenant(
    server: TestServer, idp: TenantHandle
) -> None:
    other = server.tenant()
    victim = make_user(server, other.tenant_id)
    before = counts(server, other.tenant_id)
    with idp.client() as c:
        body = post(
            c,
            {
                "source": "okta",
                "events": [event("t1", victim.user_principal_name, userId=victim.id, ip="185.220.101.1")],
            },
        ).json()
        assert body["created"] == 1
        (sign_in,) = c.get("/v1.0/auditLogs/signIns").json()["value"]
    assert sign_in["userId"] is None and sign_in["riskEventTypes_v2"] == ["anonymizedIPAddress"]
    assert counts(server, other.tenant_id) == before
