"""Show point 5: unsanctioning an app puts it into the next block script of every format, each in its
appliance's syntax; governance changes are audited; bad input changes nothing."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.server import TenantHandle, TestServer

WRITE = "CloudApp-Discovery.ReadWrite.All"
MEGA = ["mega.co.nz", "mega.io", "mega.nz"]


def client(server: TestServer, tenant: TenantHandle) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Token {tenant.api_token(WRITE)}"}, timeout=30
    )


def script(c: httpx.Client, fmt: int) -> str:
    response = c.get("/api/discovery_block_scripts/", params={"format": fmt, "type": "banned"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def check_bluecoat(text: str) -> None:
    assert text.splitlines() == [f"url.domain={d} deny" for d in MEGA]


def check_cisco_asa(text: str) -> None:
    lines = text.splitlines()
    regexes = [line for line in lines if line.startswith("regex ")]
    assert regexes == [
        r'regex TrustPlane-Unsanctioned-1 "(^|\.)mega\.co\.nz$"',
        r'regex TrustPlane-Unsanctioned-2 "(^|\.)mega\.io$"',
        r'regex TrustPlane-Unsanctioned-3 "(^|\.)mega\.nz$"',
    ]
    assert "class-map type regex match-any TrustPlane-Unsanctioned-domains" in lines
    assert [line for line in lines if line.startswith(" match regex ")] == [
        f" match regex TrustPlane-Unsanctioned-{i}" for i in (1, 2, 3)
    ]
    assert " match request header host regex class TrustPlane-Unsanctioned-domains" in lines
    assert lines[-1] == "  drop-connection log"


def check_fortigate(text: str) -> None:
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "config webfilter urlfilter" and lines[-1] == "end"
    assert lines.count("config entries") + 1 == lines.count("end")  # every config block is closed
    assert sum(1 for line in lines if line.startswith("edit ")) == lines.count("next")
    urls = [m.group(1) for line in lines if (m := re.fullmatch(r'set url "(.+)"', line))]
    assert urls == [u for d in MEGA for u in (d, f"*.{d}")]
    assert lines.count("set action block") == len(urls) and lines.count("set type wildcard") == len(urls)


def check_palo_alto(text: str) -> None:
    assert text.splitlines() == [
        'set profiles custom-url-category TrustPlane-Unsanctioned type "URL List"',
        "set profiles custom-url-category TrustPlane-Unsanctioned list "
        "[ mega.co.nz *.mega.co.nz mega.io *.mega.io mega.nz *.mega.nz ]",
    ]


def check_zscaler(text: str) -> None:
    assert text.splitlines() == [f".{d}" for d in MEGA]


def check_juniper(text: str) -> None:
    first, second = text.splitlines()
    assert first.startswith("set security utm custom-objects url-pattern TrustPlane-Unsanctioned value [ ")
    assert first.endswith(" ]")
    patterns = re.findall(r'"([^"]+)"', first)
    assert patterns == [
        p for d in MEGA for p in (f"http://{d}", f"https://{d}", f"http://*.{d}", f"https://*.{d}")
    ]
    assert second == (
        "set security utm custom-objects custom-url-category TrustPlane-Unsanctioned "
        "value TrustPlane-Unsanctioned"
    )


def check_websense(text: str) -> None:
    assert text.splitlines() == [f"dest_host={d} action=deny" for d in MEGA]


CHECKS = {
    102: check_bluecoat,
    104: check_cisco_asa,
    108: check_fortigate,
    112: check_palo_alto,
    120: check_zscaler,
    129: check_juniper,
    135: check_websense,
}


@pytest.mark.parametrize("fmt", sorted(CHECKS))
def test_unsanctioned_app_is_in_the_next_block_script_in_the_appliance_syntax(
    server: TestServer, tenant: TenantHandle, fmt: int
) -> None:
    with client(server, tenant) as c:
        assert "mega" not in script(c, fmt)
        response = c.patch(
            "/api/v1/discovery/apps/mega/", json={"status": "unsanctioned", "note": "file sharing"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["tags"] == ["Unsanctioned"]
        c.patch("/api/v1/discovery/apps/slack/", json={"status": "monitored"})
        c.patch("/api/v1/discovery/apps/box/", json={"status": "sanctioned"})
        CHECKS[fmt](script(c, fmt))


def test_sanctioning_again_removes_the_app_from_the_scripts(server: TestServer, tenant: TenantHandle) -> None:
    with client(server, tenant) as c:
        c.patch("/api/v1/discovery/apps/mega/", json={"status": "unsanctioned"})
        assert "mega.nz" in script(c, 102)
        c.patch("/api/v1/discovery/apps/mega/", json={"status": "sanctioned"})
        assert script(c, 102) == ""


def test_governance_change_is_audited_with_before_and_after(server: TestServer, tenant: TenantHandle) -> None:
    with client(server, tenant) as c:
        c.patch("/api/v1/discovery/apps/dropbox/", json={"status": "unsanctioned", "tags": ["legal-review"]})
    rows = server.rows(
        "SELECT data FROM events WHERE tenant_id = :t AND type = 'discovery.app.governed'", t=tenant.tenant_id
    )
    assert len(rows) == 1
    data = rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])
    assert data["before"]["status"] is None
    assert data["after"] == {"status": "unsanctioned", "tags": ["legal-review"], "riskOverride": None}


def test_risk_override_replaces_the_score_of_that_app_only(server: TestServer, tenant: TenantHandle) -> None:
    with client(server, tenant) as c:
        assert c.get("/api/v1/discovery/apps/pcloud/").json()["riskScore"] is None  # nothing sourced
        body = c.patch(
            "/api/v1/discovery/apps/pcloud/", json={"riskScoreOverride": 9, "note": "approved"}
        ).json()
        assert (body["riskScore"], body["riskScoreOverridden"], body["note"]) == (9, True, "approved")
        dropbox = c.get("/api/v1/discovery/apps/dropbox/").json()
    assert dropbox["riskScore"] == 10 and dropbox["riskScoreOverridden"] is False  # its one sourced fact
    assert dropbox["riskAttributes"]["isSoc3Compliant"]["source"].startswith("https://")


def test_block_list_feed_has_an_etag_and_answers_304_when_unchanged(
    server: TestServer, tenant: TenantHandle
) -> None:
    with client(server, tenant) as c:
        c.patch("/api/v1/discovery/apps/mega/", json={"status": "unsanctioned"})
        feed = c.get("/api/v1/discovery/block_list/", params={"format": "json"})
        assert feed.json()["domains"] == MEGA
        etag = feed.headers["etag"]
        assert c.get("/api/v1/discovery/block_list/", headers={"If-None-Match": etag}).status_code == 304
        assert c.get("/api/v1/discovery/block_list/").text.splitlines() == MEGA
        c.patch("/api/v1/discovery/apps/wetransfer/", json={"status": "unsanctioned"})
        changed = c.get("/api/v1/discovery/block_list/", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/discovery/apps/no-such-app/", {"status": "unsanctioned"}, 404),
        ("/api/v1/discovery/apps/mega/", {"status": "banned"}, 400),
        ("/api/v1/discovery/apps/mega/", {"tags": ["Sanctioned"]}, 400),
        ("/api/v1/discovery/apps/mega/", {"riskScoreOverride": 11}, 400),
        ("/api/v1/discovery/apps/mega/", {"colour": "red"}, 400),
        ("/api/v1/discovery/apps/mega/", ["status"], 400),
    ],
)
def test_bad_governance_input_is_refused_in_mcas_dialect_and_changes_nothing(
    server: TestServer, tenant: TenantHandle, path: str, body: object, status: int
) -> None:
    with client(server, tenant) as c:
        response = c.patch(path, json=body)
    assert response.status_code == status and set(response.json()) == {"detail"}, response.text
    assert (
        server.scalar(
            "SELECT count(*) FROM discovery_app_governance WHERE tenant_id = :t", t=tenant.tenant_id
        )
        == 0
    )
    assert (
        server.scalar(
            "SELECT count(*) FROM events WHERE tenant_id = :t AND type LIKE 'discovery.%'", t=tenant.tenant_id
        )
        == 0
    )


@pytest.mark.parametrize(
    "params", [{"format": "999"}, {"format": "x"}, {}, {"format": "102", "type": "allowed"}]
)
def test_unknown_block_script_format_or_type_is_a_400(
    server: TestServer, tenant: TenantHandle, params: dict[str, str]
) -> None:
    with client(server, tenant) as c:
        response = c.get("/api/discovery_block_scripts/", params=params)
    assert response.status_code == 400 and response.json()["detail"]


def test_governance_is_per_tenant(server: TestServer, tenant: TenantHandle) -> None:
    other = server.tenant()
    with client(server, tenant) as c, client(server, other) as o:
        c.patch("/api/v1/discovery/apps/mega/", json={"status": "unsanctioned"})
        assert script(o, 102) == ""
        assert o.get("/api/v1/discovery/apps/mega/").json()["status"] is None


def test_score_metrics_unknown_counts_against_lowers_the_score(
    server: TestServer, tenant: TenantHandle
) -> None:
    with client(server, tenant) as c:
        assert c.get("/api/v1/discovery/apps/dropbox/").json()["riskScore"] == 10
        response = c.put("/api/v1/discovery/score_metrics/", json={"unknownCountsAgainst": True})
        assert response.status_code == 200, response.text
        against = c.get("/api/v1/discovery/apps/dropbox/").json()
        ignored = c.put(
            "/api/v1/discovery/score_metrics/",
            json={
                "categoryImportance": {"compliance": "veryHigh", "general": "ignored"},
                "unknownCountsAgainst": False,
            },
        )
        weighted = c.get("/api/v1/discovery/apps/dropbox/").json()
    assert against["riskScore"] == 0 and 0 < against["riskSubscores"]["compliance"] < 10
    assert ignored.status_code == 200 and weighted["riskScore"] == 10


@pytest.mark.parametrize(
    "body",
    [{"categoryImportance": {"security": "extreme"}}, {"attributeImportance": {"isMagic": "low"}}, {"x": 1}],
)
def test_bad_score_metrics_are_refused(
    server: TestServer, tenant: TenantHandle, body: dict[str, object]
) -> None:
    with client(server, tenant) as c:
        response = c.put("/api/v1/discovery/score_metrics/", json=body)
    assert response.status_code == 400 and response.json()["detail"]
    assert (
        server.scalar("SELECT count(*) FROM discovery_settings WHERE tenant_id = :t", t=tenant.tenant_id) == 0
    )
