"""Show point 4 and the discovery policies: a discovery upload (through the MCAS three-stage upload, processed
in several slices) that contains a high-risk app raises the "new risky app" alert once — not once per line,
slice or upload; an unsanctioned app in use raises one alert per app however often it is seen; discovery
usage becomes activities (source 5)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.alerts.support import listing, mcas, wait_ingested
from tests.discovery.test_upload_api import upload
from tests.support.server import TenantHandle, TestServer


def squid_log(path: Path, lines: int) -> Path:
    """``lines`` Squid records: most to Dropbox (risk score 10), every fifth to MEGA, by four users."""
    start = int(time.time()) - 7200
    hosts = ["www.dropbox.com", "www.dropbox.com", "content.dropboxapi.com", "www.dropbox.com", "mega.nz"]
    with path.open("w") as out:
        for i in range(lines):
            out.write(
                f"{start + i}.000 10 10.1.0.{i % 4 + 1} TCP_MISS/200 {200 + i} GET "
                f"https://{hosts[i % 5]}/f/{i} user{i % 4} HIER_DIRECT/198.51.100.20 text/html\n"
            )
    return path


def alerts(server: TestServer, tenant_id: str, policy: str) -> list[tuple[str, int]]:
    rows = server.rows(
        "SELECT subject, occurrences FROM alerts WHERE tenant_id = :t AND policy = :p ORDER BY seq",
        t=tenant_id,
        p=policy,
    )
    return [(str(s), int(o)) for s, o in rows]


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTPLANE_DISCOVERY_SLICE_LINES", "100")  # read by the in-process worker per job


def test_an_upload_with_a_high_risk_app_raises_new_risky_app_once(
    server: TestServer, tenant: TenantHandle, tmp_path: Path, small_slices: None
) -> None:
    log = squid_log(tmp_path / "proxy.log", 1000)
    with mcas(server, tenant) as client:
        # the tenant's assessment: MEGA is high risk (the shipped catalogue knows no score for it)
        governed = client.patch("/api/v1/discovery/apps/mega/", json={"riskScoreOverride": 1})
        assert governed.status_code == 200 and governed.json()["riskScore"] == 1
        first = upload(client, log, "SQUID", "edge proxy", form=False)
        assert first["status"] == "done" and first["result"]["parsed"] == 1000
        wait_ingested(server, tenant.tenant_id)
        slices = server.scalar(
            "SELECT count(*) FROM events WHERE tenant_id = :t AND type = 'discovery.apps.seen'",
            t=tenant.tenant_id,
        )
        assert slices >= 5  # 1000 lines in slices of 100: many slices mention MEGA
        assert alerts(server, tenant.tenant_id, "newRiskyApp") == [("app:mega", 1)]  # not Dropbox (score 10)
        # another upload and another report mentioning MEGA: not new any more
        upload(client, log, "SQUID", "branch proxy", form=False)
        wait_ingested(server, tenant.tenant_id)
        assert alerts(server, tenant.tenant_id, "newRiskyApp") == [("app:mega", 1)]
        (alert,) = listing(client, "/api/v1/alerts/", {"filters": {"alertType": {"eq": ["newRiskyApp"]}}})[
            "data"
        ]
        assert alert["title"] == "New risky app: MEGA" and alert["severityValue"] == 2
        assert {"id": "mega", "label": "MEGA", "type": "service"} in alert["entities"]
        assert alert["stories"] == [4]  # DISCOVERY
        by_app = listing(client, "/api/v1/alerts/", {"filters": {"entity.service": {"eq": ["mega"]}}})
        assert [a["_id"] for a in by_app["data"]] == [alert["_id"]]
        used = listing(
            client,
            "/api/v1/activities/",
            {
                "filters": {
                    "service": {"eq": ["mega"]},
                    "source": {"eq": [5]},
                    "user.username": {"eq": ["user0"]},
                }
            },
        )
        assert used["total"] >= 1 and all(a["appName"] == "MEGA" for a in used["data"])


def test_unknown_risk_score_raises_no_new_risky_app_alert(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    with mcas(server, tenant) as client:
        upload(client, squid_log(tmp_path / "p.log", 50), "SQUID", "edge", form=False)
    wait_ingested(server, tenant.tenant_id)
    assert alerts(server, tenant.tenant_id, "newRiskyApp") == []


def test_unsanctioned_app_in_use_is_one_alert_per_app_updated_per_sighting(
    server: TestServer, tenant: TenantHandle, tmp_path: Path, small_slices: None
) -> None:
    with mcas(server, tenant) as client:
        assert (
            client.patch("/api/v1/discovery/apps/mega/", json={"status": "unsanctioned"}).status_code == 200
        )
        upload(client, squid_log(tmp_path / "p.log", 500), "SQUID", "edge", form=False)
        wait_ingested(server, tenant.tenant_id)
        ((subject, occurrences),) = alerts(server, tenant.tenant_id, "unsanctionedAppUse")
        assert subject == "app:mega" and occurrences >= 5  # one alert, updated by every slice seeing MEGA
        # disabled, the policy raises nothing more
        patched = client.patch("/api/v1/alert_policies/unsanctionedAppUse/", json={"enabled": False})
        assert patched.status_code == 200 and patched.json()["enabled"] is False
        client.post(
            "/api/v1/alerts/close_benign/",
            json={"filters": {"alertType": {"eq": ["unsanctionedAppUse"]}}, "reasonId": 6},
        )
        upload(client, squid_log(tmp_path / "q.log", 100), "SQUID", "edge", form=False)
        wait_ingested(server, tenant.tenant_id)
        assert alerts(server, tenant.tenant_id, "unsanctionedAppUse") == [(subject, occurrences)]
