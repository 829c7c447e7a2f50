"""Anonymisation (MCAS's anonymizer): user names (and optionally source IPs) of an anonymised report are
replaced at ingest by tenant-keyed tokens; an admin with CloudApp-Discovery.Deanonymize resolves them with a
justification, audited; nothing else shows or keeps the clear names."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.discovery.test_upload_api import mcas, wait_done
from tests.support.server import TenantHandle, TestServer
from trustplane.discovery.anonymizer import IP_ADDRESS, USER, Anonymizer, NotAToken, new_key

WRITE = "CloudApp-Discovery.ReadWrite.All"
READ = "CloudApp-Discovery.Read.All"
DEANONYMIZE = "CloudApp-Discovery.Deanonymize"
BASE = "/beta/security/dataDiscovery/cloudAppDiscovery/uploadedStreams"
P30 = "aggregatedAppsDetails(period=duration'P30D')"
WHY = "Investigating anomalous upload volume to MEGA, case 4711"


# --- the cipher ---------------------------------------------------------------------------------------


def test_tokens_are_deterministic_per_key_and_resolve_back() -> None:
    one, other = Anonymizer.from_key(new_key()), Anonymizer.from_key(new_key())
    token = one.user("alice@corp.example")
    assert token.startswith("anon-") and "alice" not in token
    assert one.user("alice@corp.example") == token != other.user("alice@corp.example")
    assert one.resolve(USER, token) == "alice@corp.example"
    for address in ("10.1.2.3", "2001:db8::1", "gateway-7"):
        assert one.resolve(IP_ADDRESS, one.ip_address(address)) == address
    assert len(one.ip_address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")) <= 64


def test_a_token_resolves_only_with_its_key_and_kind() -> None:
    one, other = Anonymizer.from_key(new_key()), Anonymizer.from_key(new_key())
    token = one.user("bob")
    with pytest.raises(NotAToken):
        other.resolve(USER, token)
    with pytest.raises(NotAToken):
        one.resolve(IP_ADDRESS, token)
    raw = bytearray(base64.urlsafe_b64decode(token[5:] + "=" * (-len(token[5:]) % 4)))
    raw[-1] ^= 1
    with pytest.raises(NotAToken):
        one.resolve(USER, "anon-" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="))
    for junk in ("bob", "anon-", "anon-!!!", "anon-AAAA"):
        with pytest.raises(NotAToken):
            one.resolve(USER, junk)


def test_a_long_name_is_cut_to_fit_the_column_without_splitting_a_character() -> None:
    engine = Anonymizer.from_key(new_key())
    name = "é" * 200  # 400 bytes of UTF-8
    token = engine.user(name)
    assert len(token) <= 256
    assert engine.resolve(USER, token) == "é" * 86  # 172 bytes, whole characters


# --- through the MCAS face ----------------------------------------------------------------------------


def cef(user: str, src: str, host: str) -> str:
    ms = int((time.time() - 3600) * 1000)
    return f"CEF:0|Acme|Gate|1.0|100|Web request|3|rt={ms} src={src} suser={user} dhost={host} out=10 in=20"


LINES = [
    cef("alice", "10.1.0.5", "www.dropbox.com"),
    cef("alice", "10.1.0.5", "mega.nz"),
    cef("bob", "10.1.0.6", "www.dropbox.com"),
    "CEF:0|broken line of bob",
]


def submit(
    client: httpx.Client, tmp: Path, stream: str, extra: dict[str, Any] | None = None, *, wait: bool = True
) -> httpx.Response:
    path = tmp / f"{stream}.cef"
    path.write_text("\n".join(LINES) + "\n")
    url = client.get("/api/v1/discovery/upload_url/", params={"filename": path.name, "source": "GENERIC_CEF"})
    url = url.json()["url"]
    assert httpx.put(url, content=path.read_bytes()).status_code == 201
    done = client.post(
        "/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": stream, **(extra or {})}
    )
    if wait and done.status_code == 200:
        assert wait_done(client, done.json()["uploadId"])["status"] == "done"
    return done


def aggregates(server: TestServer, tenant_id: str, stream_id: str) -> list[tuple[str, str]]:
    rows = server.rows(
        "SELECT user_name, ip_address FROM discovery_aggregates WHERE tenant_id = :t AND stream_id = :s",
        t=tenant_id,
        s=stream_id,
    )
    return [(str(u), str(i)) for u, i in rows]


def resolve(client: httpx.Client, tokens: list[str], **body: Any) -> httpx.Response:
    return client.post(
        "/api/v1/discovery/anonymization/resolve/",
        json={"kind": "user", "direction": "fromAnonymized", "values": tokens, "justification": WHY, **body},
    )


def test_an_anonymised_report_keeps_no_user_name(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        done = submit(client, tmp_path, "private", {"anonymizeUsers": True})
        upload = client.get(f"/api/v1/discovery/uploads/{done.json()['uploadId']}/").json()
        stream_id = done.json()["streamId"]
        streams = {s["_id"]: s for s in client.get("/api/discovery/streams/").json()}
        top_users = client.get(f"/api/v1/discovery/streams/{stream_id}/report/users/").json()
    rows = aggregates(server, tenant.tenant_id, stream_id)
    users = {u for u, _ in rows}
    assert len(users) == 2 and all(u.startswith("anon-") for u in users)
    assert {i for _, i in rows} == {"10.1.0.5", "10.1.0.6"}  # IPs kept: only users were asked for
    assert {u["userIdentifier"] for u in top_users["data"]} == users
    assert streams[stream_id]["anonymizeUsers"] is True
    # Nothing else keeps the names: reject samples are withheld and the raw log is gone.
    assert "bob" not in json.dumps(upload["result"]) and upload["result"]["rejected"] == 1
    path = server.scalar("SELECT path FROM discovery_uploads WHERE id = :u", u=upload["id"])
    server.wait_for_jobs()  # the raw log is deleted by a job queued with the last slice's commit
    assert not Path(str(path)).exists()
    events = server.rows("SELECT data FROM events WHERE tenant_id = :t", t=tenant.tenant_id)
    assert not any('"alice"' in (d if isinstance(d, str) else json.dumps(d)) for (d,) in events)
    reader = tenant.app(READ, name="graph reader")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {reader.token()}"}) as g:
        graph_users = g.get(f"{BASE}/{stream_id}/{P30}/dropbox/users").json()["value"]
        listed = {s["id"]: s for s in g.get(BASE).json()["value"]}
    assert {u["userIdentifier"] for u in graph_users} == users
    assert listed[stream_id]["anonymizeUserData"] is True


def test_an_admin_resolves_a_token_with_a_justification_audited(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        stream_id = submit(client, tmp_path, "private", {"anonymizeUsers": "true"}).json()["streamId"]
    tokens = sorted({u for u, _ in aggregates(server, tenant.tenant_id, stream_id)})
    with mcas(server, tenant.api_token(WRITE, READ)) as client:
        refused = resolve(client, tokens)
    with mcas(server, tenant.api_token(DEANONYMIZE, name="investigator")) as client:
        resolved = resolve(client, tokens)
        looked_up = resolve(client, ["alice"], direction="toAnonymized")
        unknown = resolve(client, ["anon-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "carol"])
    assert refused.status_code == 403
    assert resolved.status_code == 200, resolved.text
    assert sorted(r["output"] for r in resolved.json()["data"]) == ["alice", "bob"]
    (alice,) = [r["input"] for r in resolved.json()["data"] if r["output"] == "alice"]
    assert looked_up.json()["data"][0]["output"] == alice
    assert [r["output"] for r in unknown.json()["data"]] == [None, None]
    assert all(r["error"] for r in unknown.json()["data"])
    audit = server.rows(
        "SELECT actor, data FROM events WHERE tenant_id = :t AND type = 'discovery.anonymization.resolved' "
        "ORDER BY created_at",
        t=tenant.tenant_id,
    )
    assert len(audit) == 3
    actor, data = (json.loads(v) if isinstance(v, str) else v for v in audit[0])
    assert actor["name"] == "investigator" and data["justification"] == WHY
    assert sorted(data["tokens"]) == tokens and data["resolved"] == 2
    assert "alice" not in json.dumps(data) and "bob" not in json.dumps(data)


@pytest.mark.parametrize(
    "body",
    [
        {"justification": "short"},
        {"justification": None},
        {"values": []},
        {"values": "anon-x"},
        {"values": [""]},
        {"kind": "device"},
        {"direction": "sideways"},
    ],
)
def test_bad_resolve_requests_answer_400_and_audit_nothing(
    server: TestServer, tenant: TenantHandle, body: dict[str, Any]
) -> None:
    with mcas(server, tenant.api_token(DEANONYMIZE)) as client:
        response = resolve(client, ["anon-AAAA"], **body)
    assert response.status_code == 400 and response.json()["detail"]
    assert (
        server.scalar(
            "SELECT count(*) FROM events WHERE tenant_id = :t AND type LIKE 'discovery.anonymization%'",
            t=tenant.tenant_id,
        )
        == 0
    )


def test_ip_addresses_too_when_asked_and_another_tenant_cannot_resolve(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        stream_id = submit(
            client, tmp_path, "dark", {"anonymizeUsers": True, "anonymizeIpAddresses": True}
        ).json()["streamId"]
    ips = sorted({i for _, i in aggregates(server, tenant.tenant_id, stream_id)})
    assert len(ips) == 2 and all(i.startswith("anon-") for i in ips)
    with mcas(server, tenant.api_token(DEANONYMIZE)) as client:
        mine = resolve(client, ips, kind="ipAddress").json()["data"]
    with mcas(server, server.tenant().api_token(DEANONYMIZE)) as client:
        theirs = resolve(client, ips, kind="ipAddress").json()["data"]
    assert sorted(r["output"] for r in mine) == ["10.1.0.5", "10.1.0.6"]
    assert [r["output"] for r in theirs] == [None, None]


def test_tenant_default_applies_to_new_reports_and_a_report_keeps_its_setting(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        plain = submit(client, tmp_path, "plain").json()["streamId"]
        put = client.put("/api/v1/discovery/anonymization/", json={"anonymizeUsers": True})
        assert put.status_code == 200 and client.get("/api/v1/discovery/anonymization/").json() == {
            "anonymizeUsers": True,
            "anonymizeIpAddresses": False,
        }
        # score metrics written after the key was made leave the anonymisation settings alone
        defaulted = submit(client, tmp_path, "after default").json()["streamId"]
        assert (
            client.put("/api/v1/discovery/score_metrics/", json={"unknownCountsAgainst": True}).status_code
            == 200
        )
        # the existing plain report stays plain: an upload asking otherwise is refused, nothing queued
        refused = submit(client, tmp_path, "plain", {"anonymizeUsers": True}, wait=False)
        bad_flag = submit(client, tmp_path, "another", {"anonymizeUsers": "perhaps"}, wait=False)
        assert client.put("/api/v1/discovery/anonymization/", json={"anonymizeUsers": 1}).status_code == 400
        assert client.put("/api/v1/discovery/anonymization/", json={"colour": True}).status_code == 400
    assert refused.status_code == 400 and "fixed when it is created" in refused.json()["detail"]
    assert bad_flag.status_code == 400 and bad_flag.json()["detail"]
    assert {u for u, _ in aggregates(server, tenant.tenant_id, plain)} == {"alice", "bob"}
    assert (
        server.scalar(
            "SELECT count(*) FROM discovery_uploads WHERE tenant_id = :t AND stream_id = :s",
            t=tenant.tenant_id,
            s=plain,
        )
        == 1
    )
    tokens = sorted({u for u, _ in aggregates(server, tenant.tenant_id, defaulted)})
    assert all(t.startswith("anon-") for t in tokens)
    with mcas(server, tenant.api_token(DEANONYMIZE)) as client:
        assert sorted(r["output"] for r in resolve(client, tokens).json()["data"]) == ["alice", "bob"]
