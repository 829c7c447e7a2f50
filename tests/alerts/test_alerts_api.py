"""Show point 2 (close actions and paging): each close action (benign, false positive, true positive) on a
single alert, in bulk by ids and in bulk by filter; bad close requests change nothing; ``hasNext`` paging
walks every activity exactly once while new ones keep arriving; per-token rate limits answer 429 with
``Retry-After`` in MCAS's dialect; another tenant's alerts are invisible."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.alerts.support import listing, make_user, mcas, wait_ingested, write
from tests.support.server import TenantHandle, TestServer
from trustplane.core.events import SYSTEM, Actor, EventSpec, emit
from trustplane.directory import service as directory
from trustplane.protection import service as protection

ADMIN = Actor(type="app", id="soc-admin", name="SOC admin")
ACTIONS = {"close_benign": (4, 2), "close_false_positive": (3, 1), "close_true_positive": (5, None)}


def compromise(server: TestServer, tenant_id: str, count: int) -> list[str]:
    """``count`` users confirmed compromised (the events protection emits, straight onto the stream); the
    ids of the confirmedCompromise alerts they raise."""

    async def confirm(session: Any) -> None:
        for i in range(count):
            user_id = str(uuid.uuid4())
            data = {"userPrincipalName": f"v{i}-{user_id[:6]}@example.com"}
            spec = EventSpec("protection.risky_user.confirmed_compromised", "riskyUser", user_id, data)
            await emit(session, tenant_id, ADMIN, spec)

    write(server, confirm)
    wait_ingested(server, tenant_id)
    return [
        str(r[0])
        for r in server.rows(
            "SELECT id FROM alerts WHERE tenant_id = :t AND policy = 'confirmedCompromise' ORDER BY seq",
            t=tenant_id,
        )
    ]


def statuses(server: TestServer, tenant_id: str) -> dict[str, int]:
    rows = server.rows("SELECT id, resolution_status FROM alerts WHERE tenant_id = :t", t=tenant_id)
    return {str(i): int(s) for i, s in rows}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("mode", ["single", "bulk_ids", "bulk_filter"])
def test_close_action(server: TestServer, tenant: TenantHandle, action: str, mode: str) -> None:
    resolved, reason = ACTIONS[action]
    ids = compromise(server, tenant.tenant_id, 3)
    before = statuses(server, tenant.tenant_id)
    body: dict[str, Any] = {"comment": f"{mode} close"}
    if reason is not None:
        body["reasonId"] = reason
    if mode == "single":
        body["filters"] = {"id": {"eq": [ids[0]]}}
        closing = ids[:1]
    elif mode == "bulk_ids":
        body["filters"] = {"id": {"eq": ids[:2]}}
        closing = ids[:2]
    else:
        body["filters"] = {"entity.policy": {"eq": ["confirmedCompromise"]}, "alertOpen": {"eq": True}}
        closing = ids
    with mcas(server, tenant) as client:
        response = client.post(f"/api/v1/alerts/{action}/", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {f"closed_{action[6:]}": len(closing)}
        after = statuses(server, tenant.tenant_id)
        assert {i for i, s in after.items() if s != 0} == set(closing)
        assert all(after[i] == resolved for i in closing)
        assert {i: s for i, s in after.items() if i not in closing} == {
            i: s for i, s in before.items() if i not in closing
        }
        closed = client.get(f"/api/v1/alerts/{closing[0]}/").json()
        assert closed["resolutionStatusValue"] == resolved and closed["comment"] == f"{mode} close"
        assert closed["handledByUser"] == "test token" and closed["resolveTime"].endswith("Z")
        listed = listing(client, "/api/v1/alerts/", {"filters": {"resolutionStatus": {"eq": [resolved]}}})
        assert sorted(a["_id"] for a in listed["data"]) == sorted(closing)


@pytest.mark.parametrize(
    ("action", "body", "says"),
    [
        ("close_benign", {"filters": {"id": {"eq": ["x"]}}, "reasonId": 0}, "reasonId"),
        ("close_false_positive", {"filters": {"id": {"eq": ["x"]}}, "reasonId": 5}, "reasonId"),
        ("close_true_positive", {"filters": {"id": {"eq": ["x"]}}, "reasonId": 1}, "no reasonId"),
        ("close_benign", {"comment": "all of them"}, "Name the alerts"),
        ("close_benign", {"filters": {"severity": {"eq": ["2"]}}}, "integers"),
        ("close_benign", {"filters": {"id": {"eq": []}}}, "1 to 1000"),
        ("close_benign", {"filters": {"id": {"eq": ["x"]}}, "colour": "red"}, "Unknown parameters"),
        ("close_benign", {"filters": {"id": {"eq": ["x"]}}, "sendFeedback": "yes"}, "true or false"),
    ],
)
def test_bad_close_requests_change_nothing(
    server: TestServer, tenant: TenantHandle, action: str, body: dict[str, Any], says: str
) -> None:
    ids = compromise(server, tenant.tenant_id, 1)
    if "id" in body.get("filters", {}) and body["filters"]["id"]["eq"]:
        body["filters"]["id"]["eq"] = ids
    before = statuses(server, tenant.tenant_id)
    with mcas(server, tenant) as client:
        response = client.post(f"/api/v1/alerts/{action}/", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"detail"} and says in response.json()["detail"]
    assert statuses(server, tenant.tenant_id) == before


def test_unknown_alert_and_activity_are_404_in_mcas_dialect(server: TestServer, tenant: TenantHandle) -> None:
    with mcas(server, tenant) as client:
        for path in ("/api/v1/alerts/nope/", "/api/v1/activities/nope/"):
            response = client.get(path)
            assert response.status_code == 404 and set(response.json()) == {"detail"}
        assert client.post("/api/v1/alerts/nope/read/").status_code == 404


def test_another_tenants_alerts_are_invisible(server: TestServer, tenant: TenantHandle) -> None:
    ids = compromise(server, tenant.tenant_id, 1)
    other = server.tenant()
    with mcas(server, other) as client:
        assert client.get(f"/api/v1/alerts/{ids[0]}/").status_code == 404
        assert listing(client, "/api/v1/alerts/")["total"] == 0
        answer = client.post("/api/v1/alerts/close_benign/", json={"filters": {"id": {"eq": ids}}})
        assert answer.json() == {"closed_benign": 0, "alertsNotFound": ids}
        assert client.post(f"/api/v1/alerts/{ids[0]}/read/").status_code == 404
        assert client.post(f"/api/v1/alerts/{ids[0]}/dismiss/", json={}).json() == {
            "closed_false_positive": 0,
            "alertsNotFound": ids,
        }
        activity = server.scalar("SELECT id FROM activities WHERE tenant_id = :t LIMIT 1", t=tenant.tenant_id)
        assert client.get(f"/api/v1/activities/{activity}/").status_code == 404
        feedback = client.post(f"/api/v1/activities/{activity}/feedback/", json={"feedbackValue": "1"})
        assert feedback.status_code == 404
        assert (
            listing(client, "/api/v1/activities/", {"filters": {"activity.id": {"eq": [activity]}}})["total"]
            == 0
        )
    assert statuses(server, tenant.tenant_id)[ids[0]] == 0
    assert server.scalar("SELECT status FROM alerts WHERE id = :a", a=ids[0]) == 0
    assert server.scalar("SELECT feedback FROM activities WHERE id = :a", a=activity) is None


def test_dedup_updates_the_open_alert_and_a_closed_one_lets_a_new_one_open(
    server: TestServer, tenant: TenantHandle
) -> None:
    user = make_user(server, tenant.tenant_id)
    for _ in range(2):
        write(server, lambda s: protection.confirm_compromised(s, tenant.tenant_id, ADMIN, [user.id]))
    wait_ingested(server, tenant.tenant_id)
    rows = server.rows(
        "SELECT id, occurrences FROM alerts WHERE tenant_id = :t AND policy = 'confirmedCompromise'",
        t=tenant.tenant_id,
    )
    assert len(rows) == 1 and rows[0][1] == 2
    with mcas(server, tenant) as client:
        client.post("/api/v1/alerts/close_true_positive/", json={"filters": {"id": {"eq": [rows[0][0]]}}})
    write(server, lambda s: protection.confirm_compromised(s, tenant.tenant_id, ADMIN, [user.id]))
    wait_ingested(server, tenant.tenant_id)
    assert (
        server.scalar(
            "SELECT count(*) FROM alerts WHERE tenant_id = :t AND policy = 'confirmedCompromise'",
            t=tenant.tenant_id,
        )
        == 2
    )


def add_users(server: TestServer, tenant_id: str, prefix: str, count: int) -> None:
    async def run(session: Any) -> None:
        for i in range(count):
            await directory.create_user(
                session,
                tenant_id,
                SYSTEM,
                {
                    "user_principal_name": f"{prefix}{i}@example.com",
                    "display_name": f"{prefix} {i}",
                    "mail_nickname": f"{prefix}{i}",
                },
                password=None,
            )

    write(server, run)


def test_has_next_paging_walks_every_activity_once_while_new_ones_arrive(
    server: TestServer, tenant: TenantHandle
) -> None:
    add_users(server, tenant.tenant_id, "first", 60)
    wait_ingested(server, tenant.tenant_id)
    existing = {
        r[0] for r in server.rows("SELECT id FROM activities WHERE tenant_id = :t", t=tenant.tenant_id)
    }
    done = threading.Event()

    def produce() -> None:
        for batch in range(6):
            add_users(server, tenant.tenant_id, f"late{batch}x", 10)
            time.sleep(0.05)
        done.set()

    producer = threading.Thread(target=produce)
    seen: list[str] = []
    pages = 0
    with mcas(server, tenant, "CloudApp-Activity.Read.All") as client:
        producer.start()
        skip = 0
        while True:
            page = listing(
                client,
                "/api/v1/activities/",
                {"skip": skip, "limit": 7, "sortField": "created", "sortDirection": "asc"},
            )
            pages += 1
            seen.extend(a["_id"] for a in page["data"])
            skip += len(page["data"])
            if not page["hasNext"]:
                if not done.is_set():
                    time.sleep(0.05)
                    continue
                wait_ingested(server, tenant.tenant_id)
                if skip == server.scalar(
                    "SELECT count(*) FROM activities WHERE tenant_id = :t", t=tenant.tenant_id
                ):
                    break
    producer.join()
    everything = {
        r[0] for r in server.rows("SELECT id FROM activities WHERE tenant_id = :t", t=tenant.tenant_id)
    }
    assert len(seen) == len(set(seen)), "an activity was listed twice"
    assert existing <= set(seen) and set(seen) == everything
    assert len(everything) >= len(existing) + 60 and pages > len(everything) // 7


def test_newest_first_paging_is_stable_under_a_created_bound(
    server: TestServer, tenant: TenantHandle
) -> None:
    """The default order (date, newest first) shifts as activities arrive; bounding ``created`` by the
    newest saved activity's time gives the same exactly-once walk."""
    add_users(server, tenant.tenant_id, "old", 30)
    wait_ingested(server, tenant.tenant_id)
    with mcas(server, tenant, "CloudApp-Activity.Read.All") as client:
        newest = listing(client, "/api/v1/activities/", {"limit": 1, "sortField": "created"})
        bound = newest["data"][0]["created"]  # the last saved activity's time
        expected = listing(client, "/api/v1/activities/", {"filters": {"created": {"lte": bound}}})["total"]
        assert expected == newest["total"] >= 30
        seen: list[str] = []
        skip = 0
        while True:
            add_users(server, tenant.tenant_id, f"new{skip}x", 2)
            page = listing(
                client,
                "/api/v1/activities/",
                {"skip": skip, "limit": 9, "filters": {"created": {"lte": bound}}},
            )
            seen.extend(a["_id"] for a in page["data"])
            skip += len(page["data"])
            if not page["hasNext"]:
                break
    assert len(seen) == len(set(seen)) == expected


def test_rate_limit_per_token_answers_429_with_retry_after(server: TestServer, tenant: TenantHandle) -> None:
    async def limited(session: Any) -> str:
        from trustplane.auth.service import create_api_token

        issued = await create_api_token(
            session,
            tenant.tenant_id,
            SYSTEM,
            name="tight",
            permissions=["SecurityAlert.Read.All"],
            settings={"rate_limit": "3/minute"},
        )
        return issued.token

    token = write(server, limited)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Token {token}"}) as client:
        assert [client.get("/api/v1/alerts/").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get("/api/v1/alerts/")
        assert refused.status_code == 429
        assert set(refused.json()) == {"detail"} and "Rate limit" in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # the discovery routes of the MCAS face share the token's budget
        assert client.get("/api/v1/discovery/uploads/x/").status_code == 429
    with mcas(server, tenant) as other:  # another token of the same tenant is not limited by it
        assert other.get("/api/v1/alerts/").status_code == 200
