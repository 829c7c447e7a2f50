"""A real TrustPlane server on loopback for tests: its own database (a SQLite file, or a fresh PostgreSQL
database created for the run and dropped after), uvicorn in a background thread, and helpers to make
tenants, apps and tokens through the real token endpoint."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from trustplane.app import create_app
from trustplane.auth.keys import KeyStore
from trustplane.auth.service import create_api_token, create_application
from trustplane.bootstrap import ensure_ready
from trustplane.core.db import Database
from trustplane.core.events import SYSTEM
from trustplane.directory.service import create_tenant
from trustplane.settings import Settings

PG_ADMIN_URL = os.environ.get("TRUSTPLANE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def create_pg_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database for this run; returns (async url, name)."""
    name = f"trustplane_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}", name


def drop_pg_database(name: str) -> None:
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class TenantHandle:
    server: TestServer
    tenant_id: str
    domain: str
    client_id: str
    client_secret: str
    permissions: list[str]
    _token: str | None = field(default=None, repr=False)

    def token(self, *, audience: str = "https://graph.microsoft.com") -> str:
        if self._token is None or audience != "https://graph.microsoft.com":
            response = httpx.post(
                f"{self.server.url}/{self.tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "scope": f"{audience}/.default",
                },
            )
            response.raise_for_status()
            token = str(response.json()["access_token"])
            if audience != "https://graph.microsoft.com":
                return token
            self._token = token
        return self._token

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.token()}", **headers},
            timeout=30,
        )

    def app(self, *permissions: str, name: str = "test app") -> TenantHandle:
        """Another app in the same tenant with other permissions."""
        issued = self.server.run(self.server._create_app(self.tenant_id, name, list(permissions)))
        return TenantHandle(
            self.server,
            self.tenant_id,
            self.domain,
            issued.client_id,
            issued.client_secret,
            list(permissions),
        )

    def api_token(self, *permissions: str, name: str = "test token") -> str:
        async def make() -> str:
            async with self.server.db.session() as session:
                return (
                    await create_api_token(
                        session, self.tenant_id, SYSTEM, name=name, permissions=list(permissions)
                    )
                ).token

        return self.server.run(make())


class TestServer:
    """One server per backend per test session; tests isolate themselves by tenant."""

    __test__ = False

    def __init__(self, backend: str, tmp: Path, **overrides: Any) -> None:
        self.backend = backend
        self.pg_name: str | None = None
        if backend == "postgresql":
            self.database_url, self.pg_name = create_pg_database()
        else:
            self.database_url = f"sqlite+aiosqlite:///{tmp / 'trustplane.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            data_dir=tmp,
            database_url=self.database_url,
            job_poll_seconds=0.05,
            log_level="warning",
            **overrides,
        )
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._loop_thread.start()
        self.db = Database(self.database_url, pool_size=5)
        self.keys = KeyStore(self.settings.access_token_lifetime_seconds)
        self.run(ensure_ready(self.db, self.keys))
        self.app = create_app(self.settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.time() + 20
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the helper loop (which owns ``self.db``)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    async def _create_app(self, tenant_id: str, name: str, permissions: list[str]) -> Any:
        async with self.db.session() as session:
            return await create_application(session, tenant_id, SYSTEM, name=name, permissions=permissions)

    def tenant(self, *permissions: str) -> TenantHandle:
        """A new tenant with an app holding ``permissions`` (Directory.ReadWrite.All by default)."""
        perms = list(permissions) or ["Directory.ReadWrite.All"]

        async def make() -> TenantHandle:
            suffix = uuid.uuid4().hex[:10]
            async with self.db.session() as session:
                tenant = await create_tenant(
                    session, self.keys, name=f"Test {suffix}", domain=f"t{suffix}.example.com"
                )
                issued = await create_application(
                    session, tenant.id, SYSTEM, name="test admin", permissions=perms
                )
            return TenantHandle(self, tenant.id, tenant.domain, issued.client_id, issued.client_secret, perms)

        return self.run(make())  # type: ignore[no-any-return]

    def scalar(self, sql: str, **params: Any) -> Any:
        async def q() -> Any:
            async with self.db.read_session() as session:
                return (await session.execute(sa.text(sql), params)).scalar()

        return self.run(q())

    def rows(self, sql: str, **params: Any) -> list[Any]:
        async def q() -> list[Any]:
            async with self.db.read_session() as session:
                return list((await session.execute(sa.text(sql), params)).all())

        return self.run(q())  # type: ignore[no-any-return]

    def wait_for_jobs(self, timeout: float = 20) -> None:
        """Wait until the in-process worker has drained every job (the audit log is written by jobs)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.scalar("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')"):
                return
            time.sleep(0.05)
        raise AssertionError("jobs did not drain")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self.run(self.db.dispose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=5)
        if self.pg_name:
            drop_pg_database(self.pg_name)
