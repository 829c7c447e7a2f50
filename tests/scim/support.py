"""Helpers for SCIM tests: API tokens with Scim.ReadWrite.All (strict or in Entra's dialect) and clients."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.server import TenantHandle
from trustplane.auth.permissions import SCIM_READWRITE_ALL
from trustplane.auth.service import create_api_token
from trustplane.core.events import SYSTEM

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def scim_token(tenant: TenantHandle, dialect: str | None = None, *permissions: str) -> str:
    settings: dict[str, object] = {"scim_dialect": dialect} if dialect else {}
    perms = list(permissions) or [SCIM_READWRITE_ALL]

    async def make() -> str:
        async with tenant.server.db.session() as session:
            issued = await create_api_token(
                session, tenant.tenant_id, SYSTEM, name="scim client", permissions=perms, settings=settings
            )
            return issued.token

    return str(tenant.server.run(make()))


def scim_client(tenant: TenantHandle, dialect: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=f"{tenant.server.url}/scim/v2",
        headers={"Authorization": f"Bearer {scim_token(tenant, dialect)}"},
        timeout=30,
    )


def user_body(user_name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": user_name, **extra}


def create_user(c: httpx.Client, user_name: str, **extra: Any) -> dict[str, Any]:
    response = c.post("/Users", json=user_body(user_name, **extra))
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_group(c: httpx.Client, name: str, members: list[str] = (), **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members], **extra}
    response = c.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def patch(c: httpx.Client, url: str, *operations: dict[str, Any], **headers: str) -> httpx.Response:
    return c.patch(url, json={"schemas": [PATCH_OP], "Operations": list(operations)}, headers=headers)


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json"), response.headers
    body = dict(response.json())
    assert body["schemas"] == [ERROR], body
    assert body["status"] == str(status), body
    assert body.get("scimType") == scim_type, body
    assert body["detail"], body
    return body
