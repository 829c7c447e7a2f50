"""Show point 2 (filters): each MCAS filter operator over HTTP, on activities made by the real pipeline
(sign-ins scored by identity protection, then ingested from the event stream), and the filter engine's bad
input: a clear ``{"detail"}`` 400 naming the problem. ``endswith`` is documented only for ``office365url``,
which TrustPlane has no data for; the engine compiles it like the other LIKE operators."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.alerts.support import listing, make_user, mcas, wait_ingested, write
from tests.support.server import TestServer
from trustplane.protection import service as protection
from trustplane.protection.service import SignInAttempt

DAY_MS = 86_400_000
SIGN_INS = {"activity.eventActionType": {"eq": ["SignIn"]}}


@pytest.fixture(scope="module")
def data(server: TestServer) -> dict[str, Any]:
    """Three sign-ins: 10 days ago failed from a private address (FR, Firefox), 2 days ago from a public one
    (DE, curl), an hour ago with neither country nor user agent."""
    tenant = server.tenant()
    now = datetime.now(UTC)
    specs = [
        ("ann", now - timedelta(days=10), "10.0.0.1", "FR", "Mozilla/5.0 Firefox/132.0", 50126),
        ("bob", now - timedelta(days=2), "203.0.113.7", "DE", "curl/8.5.0", 0),
        ("cyd", now - timedelta(hours=1), "198.51.100.9", None, None, 0),
    ]
    users = {}
    for name, at, ip, country, agent, error in specs:
        user = make_user(server, tenant.tenant_id, name)
        users[name] = user
        attempt = SignInAttempt(
            user_principal_name=user.user_principal_name,
            user_id=user.id,
            at=at,
            ip_address=ip,
            country=country,
            user_agent=agent,
            error_code=error,
            failure_reason="Invalid password" if error else None,
        )
        write(server, lambda s, a=attempt: protection.assess(s, tenant.tenant_id, a))
        wait_ingested(server, tenant.tenant_id)
        time.sleep(0.01)  # distinct ``created`` milliseconds
    created = {
        upn: int(c)
        for upn, c in server.rows(
            "SELECT user_name, created FROM activities WHERE tenant_id = :t AND category = 'SignIn'",
            t=tenant.tenant_id,
        )
    }
    return {"tenant": tenant, "users": users, "now": int(now.timestamp() * 1000), "created": created}


@pytest.fixture(scope="module")
def client(server: TestServer, data: dict[str, Any]) -> Any:
    with mcas(server, data["tenant"]) as c:
        yield c


def who(client: httpx.Client, filters: dict[str, Any], data: dict[str, Any]) -> set[str]:
    """The short names of the users whose sign-ins match ``filters``."""
    page = listing(client, "/api/v1/activities/", {"filters": {**SIGN_INS, **filters}})
    upns = {a["user"]["userName"] for a in page["data"]}
    assert page["total"] == len(page["data"])
    return {n for n, u in data["users"].items() if u.user_principal_name in upns}


def upn(data: dict[str, Any], name: str) -> str:
    return str(data["users"][name].user_principal_name)


def test_eq_takes_a_list_of_values(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"user.username": {"eq": [upn(data, "ann"), upn(data, "cyd")]}}, data) == {
        "ann",
        "cyd",
    }
    assert who(client, {"user.username": {"eq": upn(data, "bob")}}, data) == {"bob"}


def test_neq_keeps_rows_without_a_value(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"location.country": {"neq": ["FR"]}}, data) == {"bob", "cyd"}


def test_gt_and_lt_on_created(client: httpx.Client, data: dict[str, Any]) -> None:
    bob = data["created"][upn(data, "bob")]
    assert who(client, {"created": {"gt": bob}}, data) == {"cyd"}
    assert who(client, {"created": {"lt": bob}}, data) == {"ann"}


def test_gte_and_lte_on_date(client: httpx.Client, data: dict[str, Any]) -> None:
    three_days_ago = data["now"] - 3 * DAY_MS
    assert who(client, {"date": {"gte": three_days_ago}}, data) == {"bob", "cyd"}
    assert who(client, {"date": {"lte": three_days_ago}}, data) == {"ann"}


def test_range_takes_start_and_end(client: httpx.Client, data: dict[str, Any]) -> None:
    now = data["now"]
    ranges = [{"start": now - 3 * DAY_MS, "end": now - DAY_MS}]
    assert who(client, {"date": {"range": ranges}}, data) == {"bob"}
    ranges.append({"start": now - 11 * DAY_MS, "end": now - 9 * DAY_MS})
    assert who(client, {"date": {"range": ranges}}, data) == {"ann", "bob"}


def test_gte_ndays_and_lte_ndays(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"date": {"gte_ndays": 5}}, data) == {"bob", "cyd"}
    assert who(client, {"date": {"lte_ndays": 5}}, data) == {"ann"}


def test_isset_and_isnotset(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"location.country": {"isset": True}}, data) == {"ann", "bob"}
    assert who(client, {"location.country": {"isnotset": True}}, data) == {"cyd"}


def test_startswith_and_doesnotstartwith(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"ip.address": {"startswith": ["203.0.", "198.51."]}}, data) == {"bob", "cyd"}
    assert who(client, {"ip.address": {"doesnotstartwith": ["10."]}}, data) == {"bob", "cyd"}


def test_contains_and_ncontains(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"actionType": {"contains": ["Failed"]}}, data) == {"ann"}
    assert who(client, {"userAgent.userAgent": {"ncontains": ["curl"]}}, data) == {"ann", "cyd"}
    assert who(client, {"userAgent.userAgent": {"contains": ["50%"]}}, data) == set()  # % is literal


def test_startswithsingle_and_text(client: httpx.Client, data: dict[str, Any]) -> None:
    assert who(client, {"text": {"startswithsingle": "Failed sign-in"}}, data) == {"ann"}
    local = upn(data, "bob").split("@")[0]
    assert who(client, {"text": {"text": f"sign-in {local}"}}, data) == {"bob"}


def test_boolean_eq(client: httpx.Client, data: dict[str, Any]) -> None:
    admin = listing(client, "/api/v1/activities/", {"filters": {"activity.type": {"eq": True}}})
    assert admin["total"] >= 3 and all(a["adminEvent"] for a in admin["data"])
    assert who(client, {"activity.type": {"eq": False}}, data) == {"ann", "bob", "cyd"}


def test_entity_filters_take_mcas_entity_objects(client: httpx.Client, data: dict[str, Any]) -> None:
    bob = data["users"]["bob"]
    page = listing(client, "/api/v1/activities/", {"filters": {"user.username": {"eq": [upn(data, "bob")]}}})
    performer = page["data"][0]["user"]["userId"]
    assert performer == bob.id
    assert who(client, {"entity": {"eq": [{"id": bob.id, "inst": 0}]}}, data) == {"bob"}
    assert who(client, {"entity": {"eq": [bob.id]}}, data) == {"bob"}
    assert "entity ids" in bad(client, "/api/v1/activities/", {"filters": {"entity": {"eq": [{"pk": 1}]}}})


def test_several_filters_and_together(client: httpx.Client, data: dict[str, Any]) -> None:
    filters = {
        "date": {"gte_ndays": 30},
        "ip.address": {"startswith": ["203."]},
        "location.country": {"eq": ["DE"]},
    }
    assert who(client, filters, data) == {"bob"}


def bad(client: httpx.Client, path: str, body: Any) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"detail"}
    return str(response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"filters": {"user.shoeSize": {"eq": [42]}}}, "Unknown filter field 'user.shoeSize'"),
        ({"filters": {"date": {"eq": [1]}}}, "does not take 'eq'"),
        ({"filters": {"date": {"approximately": 1}}}, "unknown operator 'approximately'"),
        ({"filters": {"date": {"gte": "yesterday"}}}, "epoch milliseconds"),
        ({"filters": {"date": {"gte": [1, 2]}}}, "single value"),
        ({"filters": {"user.username": {"eq": [7]}}}, "takes strings"),
        ({"filters": {"activity.type": {"eq": "yes"}}}, "true or false"),
        ({"filters": {"source": {"eq": [True]}}}, "integers"),
        ({"filters": {"date": {"range": [{"start": 1}]}}}, "start"),
        ({"filters": {"date": {"gte_ndays": -1}}}, "number of days"),
        ({"filters": {"location.country": {"isset": "true"}}}, "true or false"),
        ({"filters": {"user.username": {"eq": []}}}, "at least one value"),
        ({"filters": {"user.username": "bob"}}, "object of operators"),
        ({"filters": ["user.username"]}, "'filters' must be an object"),
        ({"limit": 101}, "'limit'"),
        ({"skip": -1}, "'skip'"),
        ({"sortField": "severity"}, "'sortField'"),
        ({"sortDirection": "up"}, "'sortDirection'"),
        ({"page": 2}, "Unknown parameters ['page']"),
    ],
)
def test_bad_filters_are_a_clear_400(client: httpx.Client, body: Any, says: str) -> None:
    assert says in bad(client, "/api/v1/activities/", body)


def test_bad_bodies_are_a_clear_400(client: httpx.Client) -> None:
    for raw in (b"{not json", b"[1, 2]", b'{"filters": {"text": {"text": "a\\u0000b"}}}'):
        response = client.post(
            "/api/v1/activities/", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400 and set(response.json()) == {"detail"}, response.text


def test_alert_filters_check_their_types(client: httpx.Client) -> None:
    assert "integers" in bad(client, "/api/v1/alerts/", {"filters": {"severity": {"eq": ["high"]}}})
    assert "Unknown filter field" in bad(client, "/api/v1/alerts/", {"filters": {"service": {"eq": ["x"]}}})
    assert "does not take 'gte'" in bad(client, "/api/v1/alerts/", {"filters": {"severity": {"gte": 1}}})
