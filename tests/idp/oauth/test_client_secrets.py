"""The token endpoint remembers a verified client secret (argon2id once per secret per process) without
ever accepting a secret the database no longer holds or a wrong one."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from tests.support.server import TenantHandle, TestServer


def client_credentials(server: TestServer, tenant: TenantHandle, secret: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/{tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )


def delete_secrets(server: TestServer, client_id: str) -> None:
    async def run() -> None:
        async with server.db.session() as session:
            await session.execute(
                sa.text(
                    "DELETE FROM client_secrets WHERE application_id = "
                    "(SELECT id FROM applications WHERE app_id = :client_id)"
                ),
                {"client_id": client_id},
            )

    server.run(run())


def test_a_remembered_secret_stops_working_once_its_row_is_gone(server: TestServer) -> None:
    tenant = server.tenant()
    assert client_credentials(server, tenant, tenant.client_secret).status_code == 200
    assert client_credentials(server, tenant, tenant.client_secret).status_code == 200  # from memory
    delete_secrets(server, tenant.client_id)
    assert client_credentials(server, tenant, tenant.client_secret).status_code == 401


def test_a_wrong_secret_is_refused_after_the_right_one_was_remembered(server: TestServer) -> None:
    tenant = server.tenant()
    assert client_credentials(server, tenant, tenant.client_secret).status_code == 200
    assert client_credentials(server, tenant, tenant.client_secret + "x").status_code == 401
    assert client_credentials(server, tenant, tenant.client_secret[:-1]).status_code == 401
