"""Show point 1: the MCAS docs' three-call upload sequence, with a plain HTTP client against a server on
loopback, turns a fixture of each format into the expected report; and the face's bad-input answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import TenantHandle, TestServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WRITE = "CloudApp-Discovery.ReadWrite.All"

CUSTOM_FORMAT = {
    "kind": "delimited",
    "delimiter": ";",
    "fields": {
        "time": "when",
        "user": "who",
        "source_ip": "client",
        "dest_host": "site",
        "bytes_up": "up",
        "bytes_down": "down",
        "action": "verdict",
    },
    "time_format": "%Y-%m-%dT%H:%M:%S",
    "blocked_values": ["refused"],
    "required": ["time", "dest_host"],
}

# What each format's fixture must produce. Apps: id -> (transactions, blocked, traffic, users).
# Unmatched: destination -> (transactions, blocked, traffic). Formats without host names (PAN-OS traffic,
# Cisco ASA) leave their destinations as IPs.
FULL = {
    "apps": {
        "dropbox": (2, 0, 56900, {"alice"}),
        "slack": (1, 0, 3000, {"bob"}),
        "mega": (1, 1, 100, {"bob"}),
    },
    "unmatched": {"unlisted-share.net": (1, 0, 30)},
}
EXPECTED: dict[str, tuple[str, str, int, dict[str, Any]]] = {
    # fixture: (source, file name, rejected lines, report)
    "squid": (
        "SQUID",
        "squid.log",
        1,
        {
            "apps": {
                "dropbox": (2, 0, 5700, {"alice"}),
                "slack": (1, 0, 2200, {"bob"}),
                "mega": (1, 1, 0, {"bob"}),
            },
            "unmatched": {"unlisted-share.net": (1, 0, 20)},
        },
    ),
    "cef": ("GENERIC_CEF", "cef.log", 1, FULL),
    "leef": ("GENERIC_LEEF", "leef.log", 1, FULL),
    "w3c": ("BLUECOAT", "w3c.log", 5, FULL),
    "zscaler": ("ZSCALER", "zscaler.log", 1, FULL),
    "fortigate": ("FORTIGATE", "fortigate.log", 1, FULL),
    "custom": ("CUSTOM_PARSER", "custom.log", 2, FULL),
    "paloalto": (
        "PALO_ALTO",
        "paloalto.log",
        1,
        {
            "apps": {"dropbox": (1, 0, 0, {"corp\\alice"})},
            "unmatched": {
                "198.51.100.20": (1, 0, 6600),
                "198.51.100.30": (1, 0, 3000),
                "198.51.100.50": (1, 1, 100),
                "198.51.100.40": (1, 0, 30),
            },
        },
    ),
    "cisco_asa": (
        "CISCO_ASA",
        "cisco_asa.log",
        2,
        {
            "apps": {},
            "unmatched": {
                "198.51.100.20": (1, 0, 6600),
                "198.51.100.21": (1, 0, 50300),
                "198.51.100.30": (1, 0, 3000),
                "198.51.100.50": (1, 1, 0),
                "unlisted-share.net": (1, 0, 0),
            },
        },
    ),
}


def mcas(server: TestServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=30)


def wait_done(client: httpx.Client, upload_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body: dict[str, Any] = client.get(f"/api/v1/discovery/uploads/{upload_id}/").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"upload {upload_id} did not finish")


def upload(client: httpx.Client, path: Path, source: str, stream: str, *, form: bool) -> dict[str, Any]:
    """The documented sequence: upload_url, PUT to the returned URL (no token), done_upload."""
    initiated = client.get("/api/v1/discovery/upload_url/", params={"filename": path.name, "source": source})
    assert initiated.status_code == 200, initiated.text
    assert initiated.json()["provider"] == "azure"
    url = initiated.json()["url"]
    put = httpx.put(url, content=path.read_bytes(), headers={"x-ms-blob-type": "BlockBlob"})
    assert put.status_code == 201, put.text
    body = {"uploadUrl": url, "inputStreamName": stream}
    done = (
        client.post("/api/v1/discovery/done_upload/", data=body)
        if form
        else client.post("/api/v1/discovery/done_upload/", json=body)
    )
    assert done.status_code == 200, done.text
    return wait_done(client, done.json()["uploadId"])


def report(server: TestServer, tenant_id: str, stream_id: str) -> dict[str, Any]:
    apps: dict[str, Any] = {}
    for app_id, tx, blocked, traffic, user in server.rows(
        "SELECT app_id, transactions, blocked, traffic, user_name FROM discovery_aggregates "
        "WHERE tenant_id = :t AND stream_id = :s",
        t=tenant_id,
        s=stream_id,
    ):
        t0, b0, tr0, users = apps.get(app_id, (0, 0, 0, set()))
        apps[app_id] = (t0 + tx, b0 + blocked, tr0 + traffic, users | {user})
    unmatched: dict[str, Any] = {}
    for dest, tx, blocked, traffic in server.rows(
        "SELECT destination, transactions, blocked, traffic FROM discovery_unmatched "
        "WHERE tenant_id = :t AND stream_id = :s",
        t=tenant_id,
        s=stream_id,
    ):
        t0, b0, tr0 = unmatched.get(dest, (0, 0, 0))
        unmatched[dest] = (t0 + tx, b0 + blocked, tr0 + traffic)
    return {"apps": apps, "unmatched": unmatched}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_documented_upload_sequence_processes_each_format_into_the_expected_report(
    server: TestServer, tenant: TenantHandle, fixture: str
) -> None:
    source, name, rejected, expected = EXPECTED[fixture]
    with mcas(server, tenant.api_token(WRITE)) as client:
        if source == "CUSTOM_PARSER":
            assert client.put("/api/v1/discovery/custom_parser/", json=CUSTOM_FORMAT).status_code == 200
        result = upload(client, FIXTURES / name, source, f"{fixture} gateway", form=fixture in ("cef", "w3c"))
    assert result["status"] == "done", result
    stats = result["result"]
    lines = len((FIXTURES / name).read_bytes().splitlines())
    assert stats["linesRead"] == lines
    assert stats["parsed"] + stats["rejected"] == lines
    assert stats["rejected"] == rejected
    assert sum(stats["rejectReasons"].values()) == rejected
    assert report(server, tenant.tenant_id, result["streamId"]) == expected


def test_second_upload_to_a_continuous_report_adds_to_it_and_a_snapshot_is_separate(
    server: TestServer, tenant: TenantHandle
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        first = upload(client, FIXTURES / "cef.log", "GENERIC_CEF", "edge", form=False)
        second = upload(client, FIXTURES / "cef.log", "GENERIC_CEF", "edge", form=False)
        snap_body: dict[str, Any]
        initiated = client.get(
            "/api/v1/discovery/upload_url/", params={"filename": "c", "source": "GENERIC_CEF"}
        )
        url = initiated.json()["url"]
        httpx.put(url, content=(FIXTURES / "cef.log").read_bytes())
        snap = client.post(
            "/api/v1/discovery/done_upload/",
            json={"uploadUrl": url, "inputStreamName": "edge", "uploadAsSnapshot": True},
        )
        snap_body = wait_done(client, snap.json()["uploadId"])
    assert first["streamId"] == second["streamId"] != snap_body["streamId"]
    assert report(server, tenant.tenant_id, first["streamId"])["apps"]["dropbox"][0] == 4
    assert report(server, tenant.tenant_id, snap_body["streamId"])["apps"]["dropbox"][0] == 2


def test_bearer_token_works_as_well(server: TestServer, tenant: TenantHandle) -> None:
    app = tenant.app(WRITE, name="discovery uploader")
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {app.token()}"}, timeout=30
    ) as c:
        assert upload(c, FIXTURES / "squid.log", "SQUID", "bearer", form=False)["status"] == "done"


def test_unknown_source_is_a_400_in_mcas_dialect_and_creates_nothing(
    server: TestServer, tenant: TenantHandle
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        response = client.get("/api/v1/discovery/upload_url/", params={"filename": "a.log", "source": "NOPE"})
    assert response.status_code == 400
    assert set(response.json()) == {"detail"} and "NOPE" in response.json()["detail"]
    assert (
        server.scalar("SELECT count(*) FROM discovery_uploads WHERE tenant_id = :t", t=tenant.tenant_id) == 0
    )


@pytest.mark.parametrize(
    "params", [{"source": "SQUID"}, {"filename": "a.log"}, {"filename": "a.log", "source": "CUSTOM_PARSER"}]
)
def test_missing_filename_source_or_custom_format_is_a_400(
    server: TestServer, tenant: TenantHandle, params: dict[str, str]
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        response = client.get("/api/v1/discovery/upload_url/", params=params)
    assert response.status_code == 400 and response.json()["detail"]


def test_put_with_a_wrong_secret_is_refused_and_nothing_is_stored(
    server: TestServer, tenant: TenantHandle
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        url = client.get("/api/v1/discovery/upload_url/", params={"filename": "a", "source": "SQUID"}).json()[
            "url"
        ]
    forged = url.split("?sig=")[0] + "?sig=forged"
    response = httpx.put(forged, content=b"x\n")
    assert response.status_code == 401 and set(response.json()) == {"detail"}
    assert httpx.put(url.split("?sig=")[0], content=b"x\n").status_code == 401
    assert (
        server.scalar("SELECT status FROM discovery_uploads WHERE tenant_id = :t", t=tenant.tenant_id)
        == "awaiting"
    )


def test_done_upload_before_the_put_or_for_another_tenant_is_a_400(
    server: TestServer, tenant: TenantHandle
) -> None:
    other = server.tenant()
    with mcas(server, tenant.api_token(WRITE)) as client, mcas(server, other.api_token(WRITE)) as foreign:
        url = client.get("/api/v1/discovery/upload_url/", params={"filename": "a", "source": "SQUID"}).json()[
            "url"
        ]
        early = client.post("/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": "s"})
        httpx.put(url, content=(FIXTURES / "squid.log").read_bytes())
        stolen = foreign.post(
            "/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": "s"}
        )
        no_name = client.post("/api/v1/discovery/done_upload/", json={"uploadUrl": url})
        bad_json = client.post(
            "/api/v1/discovery/done_upload/", content=b"{", headers={"Content-Type": "application/json"}
        )
    for response in (early, stolen, no_name, bad_json):
        assert response.status_code == 400 and set(response.json()) == {"detail"}, response.text
    assert (
        server.scalar("SELECT count(*) FROM discovery_streams WHERE tenant_id = :t", t=tenant.tenant_id) == 0
    )
    assert (
        server.scalar("SELECT count(*) FROM discovery_streams WHERE tenant_id = :t", t=other.tenant_id) == 0
    )


def test_a_read_only_token_cannot_upload(server: TestServer, tenant: TenantHandle) -> None:
    with mcas(server, tenant.api_token("CloudApp-Discovery.Read.All")) as client:
        response = client.get("/api/v1/discovery/upload_url/", params={"filename": "a", "source": "SQUID"})
    assert response.status_code == 403 and set(response.json()) == {"detail"}


def test_bad_custom_format_is_a_400(server: TestServer, tenant: TenantHandle) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        response = client.put(
            "/api/v1/discovery/custom_parser/", json={"kind": "regex", "pattern": "(", "fields": {}}
        )
    assert response.status_code == 400 and response.json()["detail"]


def test_list_continuous_reports_shows_the_stream_with_its_log_type_and_files(
    server: TestServer, tenant: TenantHandle
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        upload(client, FIXTURES / "squid.log", "SQUID", "proxy", form=False)
        upload(client, FIXTURES / "squid.log", "SQUID", "proxy", form=True)
        initiated = client.get("/api/v1/discovery/upload_url/", params={"filename": "s", "source": "SQUID"})
        url = initiated.json()["url"]
        httpx.put(url, content=(FIXTURES / "squid.log").read_bytes())
        client.post(
            "/api/v1/discovery/done_upload/",
            data={"uploadUrl": url, "inputStreamName": "snap", "uploadAsSnapshot": "true"},
        )
        streams = client.get("/api/discovery/streams/").json()
    assert [s["displayName"] for s in streams] == ["proxy"]  # snapshots are not continuous reports
    (proxy,) = streams
    assert (proxy["logType"], proxy["logFilesHistoryCount"], proxy["logFilesFailsCount"]) == (114, 2, 0)
    assert proxy["lastDataReceived"]


def test_oversize_or_nul_bodies_are_refused_in_mcas_dialect_and_create_nothing(
    server: TestServer, tenant: TenantHandle
) -> None:
    """The MCAS face reads bodies within the same limit as every face (413), and refuses U+0000, which
    PostgreSQL cannot store, as bad input (400) — JSON or form-encoded alike."""
    oversize = b'{"inputStreamName": "' + b"x" * (1_048_576 + 1024) + b'"}'
    with mcas(server, tenant.api_token(WRITE)) as client:
        url = client.get("/api/v1/discovery/upload_url/", params={"filename": "a", "source": "SQUID"}).json()[
            "url"
        ]
        assert httpx.put(url, content=(FIXTURES / "squid.log").read_bytes()).status_code == 201
        done = "/api/v1/discovery/done_upload/"
        answers = {
            "oversize json": client.post(
                done, content=oversize, headers={"Content-Type": "application/json"}
            ),
            "nul json": client.post(done, json={"uploadUrl": url, "inputStreamName": "a\u0000b"}),
            "nul form": client.post(done, data={"uploadUrl": url, "inputStreamName": "a\u0000b"}),
            "oversize patch": client.patch(
                "/api/v1/discovery/apps/dropbox/",
                content=oversize,
                headers={"Content-Type": "application/json"},
            ),
        }
    for name, response in answers.items():
        expected = 413 if name.startswith("oversize") else 400
        assert response.status_code == expected and set(response.json()) == {"detail"}, (name, response.text)
    assert "NUL" in answers["nul json"].json()["detail"] and "NUL" in answers["nul form"].json()["detail"]
    assert (
        server.scalar("SELECT count(*) FROM discovery_streams WHERE tenant_id = :t", t=tenant.tenant_id) == 0
    )
