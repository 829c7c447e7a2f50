"""One tenant per test module (each test makes its own app and user, so tests stay independent): a tenant
costs an RSA key and an argon2id-hashed admin secret, which would dominate these tests' time."""

from __future__ import annotations

import pytest

from tests.idp.oauth.support import ADMIN
from tests.support.server import TenantHandle, TestServer


@pytest.fixture(scope="module")
def tenant(server: TestServer) -> TenantHandle:
    return server.tenant(*ADMIN)
