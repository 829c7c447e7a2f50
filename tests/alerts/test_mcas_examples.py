"""Show point 1: the curl examples of the MCAS alerts and activities pages (reference/mcas-api/api-alerts-*,
api-activities-*, legacy-2021/api-alerts-*), run with the real ``curl`` against a server on loopback with a
TrustPlane API token, answer in the documented shapes.

The commands are the documented ones with the host, the token and ``<pk>`` filled in. Where a page's body is
a placeholder (``// some filters``) a real filter stands in; the close_benign page's body lacks a comma
between two ids (invalid JSON) and is given with the comma. The documented example ids (``55af…``) name no
TrustPlane alert, so they come back in ``alertsNotFound`` as the pages show."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from typing import Any

import pytest

from tests.alerts.support import ALERTS_ADMIN, make_user, wait_ingested, write
from tests.support.server import TenantHandle, TestServer
from trustplane.core.events import Actor
from trustplane.protection import service as protection

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

HOST = "https://<tenant_id>.<tenant_region>.portal.cloudappsecurity.com"
LEGACY = "https://<tenant_id>.<tenant_region>.contoso.com"  # the 2021 pages' host
PARTNER = Actor(type="app", id="partner-app", name="Partner SOC")
DOC_IDS = ["55af7415f8a0a7a29eef2e1f", "55af741cf8a0a7a29eef2e20", "5f8d70bfc1ffb25b0a541c7d"]


def curl(server: TestServer, token: str, command: str, **values: str) -> tuple[int, Any]:
    """Run a documented curl command (``curl`` … as on the page) against the server; (status, JSON)."""
    command = command.replace(HOST, server.url).replace(LEGACY, server.url).replace("{LEGACY}", server.url)
    command = command.replace("<your_token_key>", token)
    for name, value in values.items():
        command = command.replace(f"<{name}>", value)
    args = shlex.split(command)
    assert args[0] == "curl"
    done = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args[1:]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), (json.loads(body) if body.strip() else None)


@pytest.fixture
def setup(server: TestServer, tenant: TenantHandle) -> dict[str, Any]:
    """Users (their creation is an activity each) and alerts: a partner confirms three users compromised."""
    users = [make_user(server, tenant.tenant_id, f"user{i}") for i in range(3)]
    write(
        server, lambda s: protection.confirm_compromised(s, tenant.tenant_id, PARTNER, [u.id for u in users])
    )
    wait_ingested(server, tenant.tenant_id)
    alert_ids = [
        row[0]
        for row in server.rows(
            "SELECT id FROM alerts WHERE tenant_id = :t AND policy = 'confirmedCompromise' ORDER BY seq",
            t=tenant.tenant_id,
        )
    ]
    assert len(alert_ids) == 3
    return {"token": tenant.api_token(*ALERTS_ADMIN), "alerts": alert_ids, "users": users}


def resolution(server: TestServer, alert_id: str) -> int:
    return int(server.scalar("SELECT resolution_status FROM alerts WHERE id = :a", a=alert_id))


def test_activities_list_fetch_and_feedback_examples(server: TestServer, setup: dict[str, Any]) -> None:
    token = setup["token"]
    status, page = curl(
        server,
        token,
        """curl -XPOST -H "Authorization:Token <your_token_key>" -H "Content-Type: application/json" """
        f'''"{HOST}/api/v1/activities/" -d '{{
  "filters": {{
    "actionType": {{"eq": ["directory.user.created"]}}
  }},
  "skip": 1,
  "limit": 10
}}' ''',
    )
    assert status == 200
    assert {"total", "hasNext", "data"} <= set(page)
    assert page["total"] == 3 and page["hasNext"] is False and len(page["data"]) == 2  # skip 1 of 3
    assert {a["actionType"] for a in page["data"]} == {"directory.user.created"}
    pk = page["data"][0]["_id"]

    status, record = curl(
        server,
        token,
        f'''curl -XGET -H "Authorization:Token <your_token_key>" "{HOST}/api/v1/activities/<pk>/"''',
        pk=pk,
    )
    assert status == 200 and record["_id"] == pk and isinstance(record["timestamp"], int)

    status, answer = curl(
        server,
        token,
        """curl -XPOST -H "Authorization:Token <your_token_key>"  -H "Content-Type: application/json" """
        f'''"{HOST}/api/v1/activities/<pk>/feedback" -d '{{
  "feedbackValue": "0",
  "feedbackText": "Irrelevant",
  "allowContact": false,
  "contactEmail": "some.contact.address"
}}' ''',
        pk=pk,
    )
    assert status == 200 and {"total", "hasNext", "data"} <= set(answer)
    assert answer["data"][0]["feedback"]["feedbackText"] == "Irrelevant"


def test_alerts_list_and_fetch_examples(server: TestServer, setup: dict[str, Any]) -> None:
    token = setup["token"]
    status, page = curl(
        server,
        token,
        """curl -XPOST -H "Authorization:Token <your_token_key>" -H "Content-Type: application/json" """
        f'''"{HOST}/api/v1/alerts/" -d '{{
  "filters": {{
    "alertOpen": {{"eq": true}}
  }},
  "skip": 1,
  "limit": 10
}}' ''',
    )
    assert status == 200
    assert set(page) == {"data", "hasNext", "max", "total", "moreThanTotal"}
    # three confirmed compromises and the three users' risk rising to high: six open alerts
    assert page["total"] == 6 and len(page["data"]) == 5 and page["moreThanTotal"] is False
    documented = {
        "_id",
        "description",
        "entities",
        "idValue",
        "isSystemAlert",
        "resolutionStatusValue",
        "severityValue",
        "statusValue",
        "stories",
        "threatScore",
        "timestamp",
        "title",
        "comment",
        "handledByUser",
        "resolveTime",
        "URL",
    }
    for alert in page["data"]:
        assert documented <= set(alert)
        assert alert["resolutionStatusValue"] == 0 and alert["severityValue"] == 2
    status, alert = curl(
        server,
        token,
        f'''curl -XGET -H "Authorization:Token <your_token_key>" "{HOST}/api/v1/alerts/<pk>/"''',
        pk=setup["alerts"][0],
    )
    assert status == 200 and alert["_id"] == setup["alerts"][0]
    assert alert["title"] == "User confirmed compromised"
    assert {"type": "account", "pa": setup["users"][0].user_principal_name}.items() <= next(
        e for e in alert["entities"] if e["type"] == "account"
    ).items()


CLOSE_BODY = """'{
  "filters": {
    "id": {
      "eq": [
        "<first>",
        "55af741cf8a0a7a29eef2e20",
        "5f8d70bfc1ffb25b0a541c7d"
      ]
    }
  },
  "comment": "Irrelevant",
  REASON
  "sendFeedback": true,
  "feedbackText": "Feedback text",
  "allowContact": true,
  "contactEmail": " user@contoso.com"
}'"""


@pytest.mark.parametrize(
    ("action", "reason", "slash", "resolved_as"),
    [
        ("close_benign", '"reasonId": 5,', "/", 4),
        ("close_false_positive", '"reasonId": 0,', "/", 3),
        ("close_true_positive", "", "", 5),  # the page's URL has no trailing slash
    ],
)
def test_close_examples_answer_as_documented(
    server: TestServer, setup: dict[str, Any], action: str, reason: str, slash: str, resolved_as: int
) -> None:
    token, first = setup["token"], setup["alerts"][0]
    command = (
        """curl -XPOST -H "Authorization:Token <your_token_key>" -H "Content-Type: application/json" """
        f'''"{HOST}/api/v1/alerts/{action}{slash}" -d {CLOSE_BODY.replace("REASON", reason)}'''
    )
    status, answer = curl(server, token, command, first=first)
    assert status == 200
    assert answer == {f"closed_{action[6:]}": 1, "alertsNotFound": DOC_IDS[1:]}
    assert resolution(server, first) == resolved_as
    # "Response if alert was properly closed": only found ids
    second = setup["alerts"][1]
    status, answer = curl(
        server,
        token,
        command.replace('"55af741cf8a0a7a29eef2e20",\n', "").replace(
            '"5f8d70bfc1ffb25b0a541c7d"', f'"{second}"'
        ),
        first=first,
    )
    assert status == 200 and answer == {f"closed_{action[6:]}": 2}
    # "Response if alert not found"
    status, answer = curl(
        server,
        token,
        command.replace('"<first>",\n', "").replace('"55af741cf8a0a7a29eef2e20",\n', ""),
    )
    assert status == 200 and answer == {f"closed_{action[6:]}": 0, "alertsNotFound": [DOC_IDS[2]]}


def test_read_and_unread_examples(server: TestServer, setup: dict[str, Any]) -> None:
    token, pk = setup["token"], setup["alerts"][2]
    for verb, expected in (("read", 1), ("unread", 0)):
        status, alert = curl(
            server,
            token,
            """curl -XPOST -H "Authorization:Token <your_token_key>" -H "Content-Type: application/json" """
            f'''"{HOST}/api/v1/alerts/<pk>/{verb}/"''',
            pk=pk,
        )
        assert status == 200 and alert["statusValue"] == expected
        assert server.scalar("SELECT status FROM alerts WHERE id = :a", a=pk) == expected


def test_legacy_examples_map_to_their_replacements(server: TestServer, setup: dict[str, Any]) -> None:
    token, (a, b, c) = setup["token"], setup["alerts"]
    # legacy-2021 pages send JSON with curl's default form content type, as they are written
    status, answer = curl(
        server,
        token,
        """curl -XPOST -H "Authorization:Token <your_token_key>" "{LEGACY}/api/v1/alerts/dismiss_bulk/" -d '{
  "comment": "Irrelevant",
  "filters": {
    "id": {
      "eq": [
        "<a>",
        "55af741cf8a0a7a29eef2e20"
      ]
    }
  }
}' """,
        a=a,
    )
    assert status == 200 and answer == {"closed_false_positive": 1, "alertsNotFound": [DOC_IDS[1]]}
    assert resolution(server, a) == 3
    status, answer = curl(
        server,
        token,
        """curl -XPOST -H "Authorization:Token <your_token_key>" "{LEGACY}/api/v1/alerts/resolve" -d '{
  "comment": "Irrelevant",
  "filters": {
    "id": {
      "eq": [
        "<b>"
      ]
    }
  }
}' """,
        b=b,
    )
    assert status == 200 and answer == {"closed_true_positive": 1}
    assert resolution(server, b) == 5
    status, answer = curl(
        server,
        token,
        """curl -XPOST -H "Authorization:Token <your_token_key>" "{LEGACY}/api/v1/alerts/<pk>/dismiss/" -d '{
  "comment": "Irrelevant"
}' """,
        pk=c,
    )
    assert status == 200 and answer == {"closed_false_positive": 1}
    assert resolution(server, c) == 3
    assert server.scalar("SELECT comment FROM alerts WHERE id = :a", a=c) == "Irrelevant"
