"""scim2-tester, the python-scim project's RFC 7643/7644 compliance checker, run through its ``check_server``
API with a real scim2-client against a TrustPlane server on loopback: every check must be SUCCESS — none
skipped, none failed — on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.scim.support import scim_token
from tests.support.server import TenantHandle, TestServer


@pytest.fixture
def client(server: TestServer, tenant: TenantHandle) -> Iterator[SyncSCIMClient]:
    token = scim_token(tenant)
    with httpx2.Client(
        base_url=f"{server.url}/scim/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        scim = SyncSCIMClient(http)
        scim.discover()
        yield scim


def test_every_scim2_tester_check_succeeds(client: SyncSCIMClient) -> None:
    results = check_server(client, raise_exceptions=False)
    assert len(results) > 50, f"scim2-tester ran only {len(results)} checks"
    failed = [r for r in results if r.status != Status.SUCCESS]
    assert not failed, "\n".join(f"{r.status.name} {r.title}: {r.reason}" for r in failed)
