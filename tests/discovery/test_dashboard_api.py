"""TrustPlane's own report endpoints (top categories, users, IP addresses, traffic over time, risk overview)
and Graph's appInfo of a discovered app, on the stream test_report_api.py uploads: alice (10.1.0.5) used
Dropbox twice 2 days ago; bob (10.1.0.6) Dropbox 20 days ago and MEGA (blocked) 2 days ago; carol
(10.1.0.7) Slack 20 days ago and an unlisted site 2 days ago."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.discovery.test_report_api import BASE, P7, P30, READ, WRITE, graph, reported
from tests.discovery.test_upload_api import mcas
from tests.support.server import TenantHandle, TestServer

__all__ = ["reported"]  # the fixture, shared with test_report_api.py


def get(server: TestServer, reader: TenantHandle, path: str, **params: Any) -> httpx.Response:
    with mcas(server, reader.api_token(READ)) as c:
        return c.get(path, params=params)


def report_path(stream_id: str, what: str) -> str:
    return f"/api/v1/discovery/streams/{stream_id}/report/{what}/"


def test_top_users_by_traffic_with_their_app_count(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    body = get(server, reader, report_path(stream_id, "users")).json()
    assert body["total"] == 3 and body["hasNext"] is False
    assert [u["userIdentifier"] for u in body["data"]] == ["alice", "bob", "carol"]
    alice, bob, _ = body["data"]
    assert (alice["transactionCount"], alice["totalNetworkTrafficInBytes"], alice["appCount"]) == (2, 3510, 1)
    assert (bob["transactionCount"], bob["blockedCount"], bob["appCount"]) == (2, 1, 2)
    assert bob["uploadNetworkTrafficInBytes"] == 107 and bob["downloadNetworkTrafficInBytes"] == 3


def test_top_users_pages_with_skip_and_top(server: TestServer, reported: tuple[TenantHandle, str]) -> None:
    reader, stream_id = reported
    first = get(server, reader, report_path(stream_id, "users"), top=1).json()
    rest = get(server, reader, report_path(stream_id, "users"), top=5, skip=1).json()
    last7 = get(server, reader, report_path(stream_id, "users"), period=7).json()
    assert [u["userIdentifier"] for u in first["data"]] == ["alice"] and first["hasNext"] is True
    assert [u["userIdentifier"] for u in rest["data"]] == ["bob", "carol"] and rest["hasNext"] is False
    assert first["total"] == rest["total"] == 3
    assert [u["userIdentifier"] for u in last7["data"]] == ["alice", "bob"]


def test_top_ip_addresses(server: TestServer, reported: tuple[TenantHandle, str]) -> None:
    reader, stream_id = reported
    body = get(server, reader, report_path(stream_id, "ip_addresses")).json()
    assert [(i["ipAddress"], i["transactionCount"]) for i in body["data"]] == [
        ("10.1.0.5", 2),
        ("10.1.0.6", 2),
        ("10.1.0.7", 1),
    ]


def test_top_categories_sum_apps_users_and_the_sanctioned_share(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    with mcas(server, reader.api_token(WRITE)) as c:
        assert c.patch("/api/v1/discovery/apps/dropbox/", json={"status": "sanctioned"}).status_code == 200
    body = get(server, reader, report_path(stream_id, "categories")).json()
    assert body["total"] == 2
    storage, collaboration = body["data"]
    assert storage["category"] == "Cloud storage" and collaboration["category"] == "Collaboration"
    assert (storage["appCount"], storage["userCount"], storage["transactionCount"]) == (2, 2, 4)
    assert storage["sanctionedTransactionCount"] == 3 and storage["blockedCount"] == 1
    assert storage["totalNetworkTrafficInBytes"] == 3510 + 10 + 100
    assert (collaboration["appCount"], collaboration["userCount"]) == (1, 1)
    assert collaboration["transactionCount"] == 1
    assert collaboration["sanctionedTransactionCount"] == 0


def test_traffic_over_time_has_one_point_per_day(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    days = get(server, reader, report_path(stream_id, "traffic")).json()["data"]
    assert [(d["transactionCount"], d["userCount"], d["appCount"]) for d in days] == [(2, 2, 2), (3, 2, 2)]
    assert days[0]["date"] < days[1]["date"]
    assert sum(d["totalNetworkTrafficInBytes"] for d in days) == 3510 + 10 + 100 + 30


def test_risk_overview_counts_apps_per_score_and_band(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    body = get(server, reader, report_path(stream_id, "risk")).json()
    bands = {b["band"]: b for b in body["bands"]}
    # Dropbox (SOC 3) and Slack (ISO 27001, 27018) have only positive sourced facts and score 10; MEGA has
    # no sourced fact, so no score.
    assert bands["low"]["appCount"] == 2 and bands["low"]["transactionCount"] == 3 + 1
    assert bands["unscored"]["appCount"] == 1 and bands["high"]["appCount"] == 0
    assert {(s["riskScore"], s["appCount"]) for s in body["byScore"]} == {(10, 2), (None, 1)}
    with mcas(server, reader.api_token(WRITE)) as c:  # an override moves the app to its band
        c.patch("/api/v1/discovery/apps/mega/", json={"riskScoreOverride": 2})
        c.patch("/api/v1/discovery/apps/slack/", json={"riskScoreOverride": 6})
    bands = {b["band"]: b for b in get(server, reader, report_path(stream_id, "risk")).json()["bands"]}
    assert bands["high"]["appCount"] == 1 and bands["medium"]["appCount"] == 1
    assert bands["low"]["appCount"] == 1 and bands["unscored"]["appCount"] == 0


@pytest.mark.parametrize(
    ("what", "params"),
    [
        ("users", {"period": 31}),
        ("users", {"top": 0}),
        ("ip_addresses", {"skip": -1}),
        ("categories", {"top": 5000}),
        ("traffic", {"period": "x"}),
        ("risk", {"period": 1}),
    ],
)
def test_bad_report_parameters_answer_400_in_mcas_dialect(
    server: TestServer, reported: tuple[TenantHandle, str], what: str, params: dict[str, Any]
) -> None:
    reader, stream_id = reported
    response = get(server, reader, report_path(stream_id, what), **params)
    assert response.status_code == 400 and response.json()["detail"]


def test_report_of_another_tenants_stream_is_not_found(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    _, stream_id = reported
    stranger = server.tenant()
    for what in ("users", "ip_addresses", "categories", "traffic", "risk"):
        response = get(server, stranger, report_path(stream_id, what))
        assert response.status_code == 404 and response.json()["detail"]


def test_report_needs_the_discovery_read_permission(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    with mcas(server, reader.api_token("User.Read.All")) as c:
        assert c.get(report_path(stream_id, "users")).status_code == 403


def test_app_info_shows_sourced_facts_and_unknown_for_the_rest(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    with graph(server, reader) as c:
        info = c.get(f"{BASE}/{stream_id}/{P30}/dropbox/appInfo").json()
        selected = c.get(f"{BASE}/{stream_id}/{P30}/dropbox/appInfo", params={"$select": "isSoc3Compliant"})
        not_seen = c.get(f"{BASE}/{stream_id}/{P7}/slack/appInfo")
        bad = c.get(f"{BASE}/{stream_id}/{P30}/dropbox/appInfo", params={"$select": "nope"})
    assert info["id"] == "dropbox" and info["vendor"] == "Dropbox, Inc."
    assert info["isSoc3Compliant"] == "true" and info["isHipaaCompliant"] == "unknown"
    assert info["sources"]["isSoc3Compliant"]["source"].startswith("https://")
    assert set(info["sources"]) == {"isSoc3Compliant"}
    assert {k for k in selected.json() if not k.startswith("@")} == {"id", "isSoc3Compliant"}
    assert not_seen.status_code == 404 and not_seen.json()["error"]["code"]
    assert bad.status_code == 400
