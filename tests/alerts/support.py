"""Helpers for the alerts tests: MCAS clients with API tokens, waiting for the event stream (the
``alerts.ingest`` jobs of one tenant) to drain; directory users and service calls come from the identity
protection tests' helpers."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.protection.support import make_user, write
from tests.support.server import TenantHandle, TestServer

ALERTS_ADMIN = (
    "SecurityAlert.ReadWrite.All",
    "CloudApp-Activity.ReadWrite.All",
    "CloudApp-Discovery.ReadWrite.All",
)


def mcas(server: TestServer, tenant: TenantHandle, *permissions: str) -> httpx.Client:
    token = tenant.api_token(*(permissions or ALERTS_ADMIN))
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=30)


def wait_ingested(server: TestServer, tenant_id: str, timeout: float = 30) -> None:
    """Until the tenant has no alerts.ingest or discovery job waiting or running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        busy = server.scalar(
            "SELECT count(*) FROM jobs WHERE tenant_id = :t AND status IN ('pending', 'running') "
            "AND kind IN ('alerts.ingest', 'discovery.process', 'protection.offline_detections')",
            t=tenant_id,
        )
        if not busy:
            return
        time.sleep(0.05)
    raise AssertionError("the event stream did not drain")


def listing(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(path, json=body or {})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert set(result) == {"data", "hasNext", "max", "total", "moreThanTotal"}
    return result


__all__ = ["listing", "make_user", "mcas", "wait_ingested", "write"]
