"""The alert policies and the activity log on the real event stream: each policy raises on what it is about
and not on what it is not, thresholds are validated and take effect, and sign-ins, admin changes and SCIM
provisioning become activities with MCAS's fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.alerts.support import listing, make_user, mcas, wait_ingested, write
from tests.support.server import TenantHandle, TestServer
from trustplane.core.events import Actor, EventSpec, emit
from trustplane.directory import service as directory
from trustplane.protection import service as protection
from trustplane.protection.service import SignInAttempt

TOR_EXIT = "185.220.101.1"
LONDON = {"latitude": 51.5074, "longitude": -0.1278}
SYDNEY = {"latitude": -33.8688, "longitude": 151.2093}
CLEANER = Actor(type="app", id="cleanup-script", name="Cleanup script")


def policy_alerts(server: TestServer, tenant_id: str, policy: str) -> list[tuple[str, int, str]]:
    rows = server.rows(
        "SELECT subject, occurrences, description FROM alerts "
        "WHERE tenant_id = :t AND policy = :p ORDER BY seq",
        t=tenant_id,
        p=policy,
    )
    return [(str(s), int(o), str(d)) for s, o, d in rows]


def sign_in(server: TestServer, tenant_id: str, user: Any, **values: Any) -> Any:
    values.setdefault("at", datetime.now(UTC))
    attempt = SignInAttempt(user_principal_name=user.user_principal_name, user_id=user.id, **values)
    return write(server, lambda s: protection.assess(s, tenant_id, attempt))


def test_a_sign_in_from_an_anonymiser_raises_risky_sign_in_and_is_an_activity(
    server: TestServer, tenant: TenantHandle
) -> None:
    user = make_user(server, tenant.tenant_id)
    calm = make_user(server, tenant.tenant_id, "calm")
    assessed = sign_in(server, tenant.tenant_id, user, ip_address=TOR_EXIT, app_display_name="Payroll")
    sign_in(server, tenant.tenant_id, calm, ip_address="81.2.69.160", country="GB", city="London")
    wait_ingested(server, tenant.tenant_id)
    assert assessed.risk_level_aggregated in ("medium", "high")
    ((subject, _, description),) = policy_alerts(server, tenant.tenant_id, "riskySignIn")
    assert subject == f"user:{user.id}" and TOR_EXIT in description
    with mcas(server, tenant) as client:
        page = listing(
            client, "/api/v1/activities/", {"filters": {"activity.eventActionType": {"eq": ["SignIn"]}}}
        )
        by_user = {a["user"]["userName"]: a for a in page["data"]}
        london = by_user[calm.user_principal_name]
        assert london["device"]["clientIP"] == "81.2.69.160"
        assert london["location"] == {"countryCode": "GB", "city": "London"}
        assert london["actionType"] == "signIn" and london["mainInfo"]["activityResult"]["isSuccess"] is True
        assert by_user[user.user_principal_name]["appName"] == "Payroll"


def test_mass_deletion_counts_one_actor_within_the_window(server: TestServer, tenant: TenantHandle) -> None:
    with mcas(server, tenant) as client:
        answer = client.patch("/api/v1/alert_policies/massDeletion/", json={"thresholds": {"deletions": 4}})
        assert answer.status_code == 200 and answer.json()["thresholds"] == {
            "deletions": 4,
            "windowMinutes": 10,
        }
    users = [make_user(server, tenant.tenant_id, f"gone{i}") for i in range(6)]
    other = Actor(type="app", id="hr-sync", name="HR sync")
    for user in users[:3]:
        write(server, lambda s, u=user: directory.delete_user(s, tenant.tenant_id, CLEANER, u.id))
    write(server, lambda s: directory.delete_user(s, tenant.tenant_id, other, users[3].id))
    wait_ingested(server, tenant.tenant_id)
    assert policy_alerts(server, tenant.tenant_id, "massDeletion") == []  # 3 by one actor, 1 by another
    for user in users[4:]:
        write(server, lambda s, u=user: directory.delete_user(s, tenant.tenant_id, CLEANER, u.id))
    wait_ingested(server, tenant.tenant_id)
    ((subject, occurrences, description),) = policy_alerts(server, tenant.tenant_id, "massDeletion")
    assert subject == "actor:cleanup-script" and occurrences == 2  # the 4th and 5th deletion
    assert "Cleanup script deleted 5" in description


def usage(bytes_up: int) -> EventSpec:
    row = {"appId": "dropbox", "appName": "Dropbox", "user": "erin", "transactions": 3, "bytesUp": bytes_up}
    return EventSpec("discovery.apps.seen", "discoveryUpload", "upload-1", {"usage": [row]})


def test_unusual_upload_volume_against_the_users_own_baseline(
    server: TestServer, tenant: TenantHandle
) -> None:
    with mcas(server, tenant) as client:
        client.patch(
            "/api/v1/alert_policies/unusualUploadVolume/",
            json={"thresholds": {"minimumSamples": 4, "minimumBytes": 10_000}},
        )
    for sent in (20_000, 21_000, 19_500, 20_500, 21_800):  # the baseline, and a small rise within it
        write(server, lambda s, b=sent: emit(s, tenant.tenant_id, Actor("system", "system"), usage(b)))
        wait_ingested(server, tenant.tenant_id)
    assert policy_alerts(server, tenant.tenant_id, "unusualUploadVolume") == []
    write(server, lambda s: emit(s, tenant.tenant_id, Actor("system", "system"), usage(900_000)))
    wait_ingested(server, tenant.tenant_id)
    ((subject, _, description),) = policy_alerts(server, tenant.tenant_id, "unusualUploadVolume")
    assert subject == "upload:dropbox|erin" and "900000 bytes" in description


def test_risky_user_threshold(server: TestServer, tenant: TenantHandle) -> None:
    user = make_user(server, tenant.tenant_id)
    sign_in(server, tenant.tenant_id, user, ip_address=TOR_EXIT)  # medium (or high) user risk
    wait_ingested(server, tenant.tenant_id)
    level = server.scalar("SELECT risk_level FROM risky_users WHERE id = :u", u=user.id)
    expected = 1 if level == "high" else 0
    assert len(policy_alerts(server, tenant.tenant_id, "riskyUser")) == expected  # default: high only
    with mcas(server, tenant) as client:
        client.patch("/api/v1/alert_policies/riskyUser/", json={"thresholds": {"minimumRiskLevel": "low"}})
    again = make_user(server, tenant.tenant_id, "again")
    sign_in(server, tenant.tenant_id, again, ip_address=TOR_EXIT)
    wait_ingested(server, tenant.tenant_id)
    assert f"user:{again.id}" in {s for s, _, _ in policy_alerts(server, tenant.tenant_id, "riskyUser")}


def test_bad_policy_settings_are_400_and_change_nothing(server: TestServer, tenant: TenantHandle) -> None:
    with mcas(server, tenant) as client:
        for path, body, says in [
            ("/api/v1/alert_policies/massDeletion/", {"thresholds": {"deletes": 3}}, "no threshold"),
            ("/api/v1/alert_policies/massDeletion/", {"thresholds": {"deletions": "many"}}, "number"),
            ("/api/v1/alert_policies/riskyUser/", {"thresholds": {"minimumRiskLevel": "extreme"}}, "one of"),
            ("/api/v1/alert_policies/riskyUser/", {"enabled": "no"}, "true or false"),
            ("/api/v1/alert_policies/riskyUser/", {"colour": 1}, "Unknown properties"),
        ]:
            response = client.patch(path, json=body)
            assert response.status_code == 400 and says in response.json()["detail"], response.text
        assert client.patch("/api/v1/alert_policies/nope/", json={"enabled": False}).status_code == 404
        policies = {p["id"]: p for p in client.get("/api/v1/alert_policies/").json()["data"]}
    assert len(policies) == 8 and all(p["enabled"] for p in policies.values())
    assert policies["massDeletion"]["thresholds"] == {"deletions": 20, "windowMinutes": 10}
    assert (
        server.scalar("SELECT count(*) FROM alert_policy_settings WHERE tenant_id = :t", t=tenant.tenant_id)
        == 0
    )


def test_scim_provisioning_is_an_activity_of_its_own_kind(server: TestServer, tenant: TenantHandle) -> None:
    scim_token = tenant.api_token("Scim.ReadWrite.All", name="HR provisioning")
    created = httpx.post(
        f"{server.url}/scim/v2/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "frank@example.com"},
        headers={"Authorization": f"Bearer {scim_token}"},
    )
    assert created.status_code == 201, created.text
    wait_ingested(server, tenant.tenant_id)
    with mcas(server, tenant) as client:
        page = listing(
            client, "/api/v1/activities/", {"filters": {"activity.eventActionType": {"eq": ["Provisioning"]}}}
        )
    (activity,) = page["data"]
    assert activity["actionType"] == "directory.user.created" and activity["adminEvent"] is True
    assert activity["description"] == "SCIM provisioning: Add user frank@example.com by HR provisioning"
    assert activity["user"]["userName"] == "HR provisioning"


def test_webhook_subscriptions_validate_and_are_tenant_scoped(
    server: TestServer, tenant: TenantHandle
) -> None:
    with mcas(server, tenant) as client:
        for body in (
            {"url": "ftp://x"},
            {"url": "http://h/x", "eventTypes": ["alert.exploded"]},
            {"uri": "x"},
        ):
            response = client.post("/api/v1/webhooks/", json=body)
            assert response.status_code == 400 and set(response.json()) == {"detail"}
        for internal in (
            "http://127.0.0.1:9/x",
            "http://[::ffff:169.254.169.254]/latest",
            "http://10.0.0.5/",
        ):
            refused = client.post("/api/v1/webhooks/", json={"url": internal})
            assert refused.status_code == 400 and "not a public address" in refused.json()["detail"]
        assert client.get("/api/v1/webhooks/").json()["data"] == []
        made = client.post(
            "/api/v1/webhooks/", json={"url": "http://9.9.9.9:9/x", "eventTypes": ["alert.closed"]}
        )
        assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
        listed = client.get("/api/v1/webhooks/").json()["data"]
        assert [w["id"] for w in listed] == [made.json()["id"]] and "secret" not in listed[0]
        assert client.delete(f"/api/v1/webhooks/{made.json()['id']}/").status_code == 204
    other = server.tenant()
    with mcas(server, other) as client:
        assert client.get("/api/v1/webhooks/").json()["data"] == []


def test_impossible_travel_found_offline_raises_its_alert(server: TestServer, tenant: TenantHandle) -> None:
    from tests.protection.support import T0
    from tests.protection.support import assess as protected_sign_in

    user = make_user(server, tenant.tenant_id, "traveller")
    for n in range(11):  # the learning period: ten sign-ins at home, one a day; then home again at T0
        protected_sign_in(server, tenant.tenant_id, user, at=T0 - timedelta(days=10 - n), **LONDON)
    wait_ingested(server, tenant.tenant_id)
    assert policy_alerts(server, tenant.tenant_id, "impossibleTravel") == []
    protected_sign_in(
        server, tenant.tenant_id, user, ip_address="1.128.0.10", at=T0 + timedelta(hours=1), **SYDNEY
    )
    wait_ingested(server, tenant.tenant_id)  # the offline-detection job, then its event's ingestion
    ((subject, _, description),) = policy_alerts(server, tenant.tenant_id, "impossibleTravel")
    assert subject == f"user:{user.id}" and user.user_principal_name in description
