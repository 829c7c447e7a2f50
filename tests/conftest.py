"""Test fixtures. Every test that touches the database runs on SQLite and on PostgreSQL: the ``server``
fixture is parametrised by backend. With CI=true the PostgreSQL run is required, never skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import TenantHandle, TestServer, pg_reachable

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = [b for b in os.environ.get("TRUSTPLANE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "postgresql" and not pg_reachable():
        if IN_CI:
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required in CI and is not reachable")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable (required in CI)")
    return name


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    tmp: Path = tmp_path_factory.mktemp(f"server-{backend}")
    srv = TestServer(backend, tmp)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def tenant(server: TestServer) -> TenantHandle:
    return server.tenant()
