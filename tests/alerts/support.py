"""Helpers for the alerts tests: MCAS clients with API tokens, directory users made through the service,
and waiting for the event stream (the ``alerts.ingest`` jobs of one tenant) to drain."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.server import TenantHandle, TestServer
from trustplane.core.events import SYSTEM
from trustplane.directory import service as directory

T = TypeVar("T")
ALERTS_ADMIN = (
    "SecurityAlert.ReadWrite.All",
    "CloudApp-Activity.ReadWrite.All",
    "CloudApp-Discovery.ReadWrite.All",
)


def mcas(server: TestServer, tenant: TenantHandle, *permissions: str) -> httpx.Client:
    token = tenant.api_token(*(permissions or ALERTS_ADMIN))
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=30)


def write(server: TestServer, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        async with server.db.session() as session:
            return await action(session)

    return server.run(run())  # type: ignore[no-any-return]


def make_user(server: TestServer, tenant_id: str, name: str = "alex") -> Any:
    nick = f"{name}{uuid.uuid4().hex[:6]}"
    return write(
        server,
        lambda s: directory.create_user(
            s,
            tenant_id,
            SYSTEM,
            {
                "user_principal_name": f"{nick}@example.com",
                "display_name": name.title(),
                "mail_nickname": nick,
            },
            password=None,
        ),
    )


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
