"""The report through Graph's discovered-apps resources (uploadedStreams, aggregatedAppsDetails with the
period, $filter / $select / $orderby, users and IP addresses) and TrustPlane's unmatched destinations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.discovery.test_upload_api import mcas, upload
from tests.support.server import TenantHandle, TestServer

WRITE = "CloudApp-Discovery.ReadWrite.All"
READ = "CloudApp-Discovery.Read.All"
P30 = "aggregatedAppsDetails(period=duration'P30D')"
P7 = "aggregatedAppsDetails(period=duration'P7D')"
BASE = "/beta/security/dataDiscovery/cloudAppDiscovery/uploadedStreams"


def cef_line(
    days_ago: float, user: str, src: str, host: str, up: int, down: int, act: str = "allowed"
) -> str:
    ms = int((time.time() - days_ago * 86400) * 1000)
    return (
        f"CEF:0|Acme|Gate|1.0|100|Web request|3|rt={ms} src={src} suser={user} dhost={host} "
        f"out={up} in={down} act={act}"
    )


@pytest.fixture
def reported(server: TestServer, tenant: TenantHandle, tmp_path: Path) -> tuple[TenantHandle, str]:
    """A stream with traffic 2 and 20 days old, uploaded through the MCAS face."""
    lines = [
        cef_line(2, "alice", "10.1.0.5", "www.dropbox.com", 1000, 2000),
        cef_line(2, "alice", "10.1.0.5", "content.dropboxapi.com", 500, 10),
        cef_line(20, "bob", "10.1.0.6", "www.dropbox.com", 7, 3),
        cef_line(2, "bob", "10.1.0.6", "mega.nz", 100, 0, act="blocked"),
        cef_line(20, "carol", "10.1.0.7", "app.slack.com", 10, 20),
        cef_line(2, "carol", "10.1.0.7", "files.unlisted-share.net", 40, 60),
    ]
    path = tmp_path / "report.cef"
    path.write_text("\n".join(lines) + "\n")
    with mcas(server, tenant.api_token(WRITE)) as client:
        result = upload(client, path, "GENERIC_CEF", "report gateway", form=False)
    return tenant.app(READ, name="report reader"), result["streamId"]


def graph(server: TestServer, reader: TenantHandle) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {reader.token()}"}, timeout=30
    )


def by_id(body: dict[str, Any]) -> dict[str, Any]:
    return {app["id"]: app for app in body["value"]}


def test_uploaded_streams_lists_the_report(server: TestServer, reported: tuple[TenantHandle, str]) -> None:
    reader, stream_id = reported
    with graph(server, reader) as c:
        body = c.get(BASE).json()
    (stream,) = [s for s in body["value"] if s["id"] == stream_id]
    assert stream["displayName"] == "report gateway" and stream["isSnapshotReport"] is False
    assert stream["logFileCount"] == 1 and stream["lastDataReceivedDateTime"]


def test_aggregated_apps_details_sums_users_ips_transactions_and_traffic_over_the_period(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    with graph(server, reader) as c:
        last30 = by_id(c.get(f"{BASE}/{stream_id}/{P30}").json())
        last7 = by_id(c.get(f"{BASE}/{stream_id}/microsoft.graph.security.{P7}").json())
    dropbox = last30["dropbox"]
    assert (dropbox["userCount"], dropbox["ipAddressCount"], dropbox["transactionCount"]) == (2, 2, 3)
    assert (dropbox["uploadNetworkTrafficInBytes"], dropbox["downloadNetworkTrafficInBytes"]) == (1507, 2013)
    assert dropbox["displayName"] == "Dropbox" and dropbox["category"] == "cloudStorage"
    assert "dropboxapi.com" in dropbox["domains"] and dropbox["riskScore"] == 10
    assert set(last30) == {"dropbox", "mega", "slack"}
    assert set(last7) == {"dropbox", "mega"}
    assert last7["dropbox"]["transactionCount"] == 2 and last7["dropbox"]["userCount"] == 1


def test_filter_on_risk_score_and_category_select_and_orderby(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    with mcas(server, reader.api_token(WRITE)) as admin:
        admin.patch("/api/v1/discovery/apps/mega/", json={"status": "unsanctioned", "riskScoreOverride": 2})
    with graph(server, reader) as c:
        risky = c.get(
            f"{BASE}/{stream_id}/{P30}", params={"$filter": "riskRating le 4", "$select": "displayName"}
        )
        storage = c.get(f"{BASE}/{stream_id}/{P30}", params={"$filter": "category eq 'cloudStorage'"})
        ordered = c.get(f"{BASE}/{stream_id}/{P30}", params={"$orderby": "displayName desc", "$top": "2"})
    assert risky.json()["value"] == [{"displayName": "MEGA"}]
    assert {a["id"] for a in storage.json()["value"]} == {"dropbox", "mega"}
    assert [a["displayName"] for a in ordered.json()["value"]] == ["Slack", "MEGA"]
    assert by_id(storage.json())["mega"]["tags"] == ["Unsanctioned"]


def test_one_app_its_users_and_ip_addresses(server: TestServer, reported: tuple[TenantHandle, str]) -> None:
    reader, stream_id = reported
    with graph(server, reader) as c:
        app = c.get(f"{BASE}/{stream_id}/{P30}/dropbox").json()
        users = c.get(f"{BASE}/{stream_id}/{P30}/dropbox/users").json()["value"]
        ips = c.get(f"{BASE}/{stream_id}/{P7}/dropbox/ipAddresses").json()["value"]
        singular = c.get(f"{BASE}/{stream_id}/{P7}/dropbox/ipAddress").json()["value"]
    assert app["id"] == "dropbox" and app["transactionCount"] == 3
    assert users == [{"userIdentifier": "alice"}, {"userIdentifier": "bob"}]
    assert ips == singular == [{"ipAddress": "10.1.0.5"}]


def test_unmatched_destinations_with_their_traffic(
    server: TestServer, reported: tuple[TenantHandle, str]
) -> None:
    reader, stream_id = reported
    with mcas(server, reader.api_token(READ)) as c:
        body = c.get(f"/api/v1/discovery/streams/{stream_id}/unmatched/").json()
    assert body["data"] == [
        {
            "destination": "unlisted-share.net",
            "transactionCount": 1,
            "blockedCount": 0,
            "uploadNetworkTrafficInBytes": 40,
            "downloadNetworkTrafficInBytes": 60,
            "totalNetworkTrafficInBytes": 100,
        }
    ]


@pytest.mark.parametrize(
    ("suffix", "params", "status"),
    [
        ("aggregatedAppsDetails(period=duration'P5D')", {}, 400),
        ("aggregatedAppsDetails(period=5)", {}, 404),
        (P30, {"$filter": "riskScore le 'x'"}, 400),
        (P30, {"$filter": "colour eq 'red'"}, 400),
        (P30, {"$expand": "appInfo"}, 400),
        (P30, {"$select": "nope"}, 400),
        (f"{P30}/no-such-app", {}, 404),
        (f"{P30}/slack/users", {}, 200),
    ],
)
def test_bad_report_queries_answer_in_graph_dialect(
    server: TestServer, reported: tuple[TenantHandle, str], suffix: str, params: dict[str, str], status: int
) -> None:
    reader, stream_id = reported
    with graph(server, reader) as c:
        response = c.get(f"{BASE}/{stream_id}/{suffix}", params=params)
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["error"]["code"] and response.json()["error"]["message"]


def test_another_tenants_stream_is_not_found(server: TestServer, reported: tuple[TenantHandle, str]) -> None:
    _, stream_id = reported
    stranger = server.tenant(READ)
    with graph(server, stranger) as c:
        assert c.get(f"{BASE}/{stream_id}/{P30}").status_code == 404
        assert c.get(BASE).json()["value"] == []
