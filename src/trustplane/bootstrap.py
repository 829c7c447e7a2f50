"""First start: migrate, create the default tenant and its admin app (whose secret is shown once)."""

from __future__ import annotations

from trustplane.auth import permissions as perm
from trustplane.auth.keys import KeyStore
from trustplane.auth.service import IssuedApp, create_application
from trustplane.core.db import Database
from trustplane.core.events import SYSTEM
from trustplane.core.migrate import upgrade
from trustplane.directory.repository import TenantLookup
from trustplane.directory.service import create_tenant

DEFAULT_TENANT_NAME = "TrustPlane Demo"
DEFAULT_TENANT_DOMAIN = "demo.trustplane.local"
ADMIN_PERMISSIONS = sorted(perm.KNOWN_PERMISSIONS)


async def ensure_ready(db: Database, keys: KeyStore) -> IssuedApp | None:
    """Returns the admin app's credentials when this call created them, else None."""
    await upgrade(db.engine)
    async with db.session() as session:
        if await TenantLookup(session).default() is not None:
            return None
        tenant = await create_tenant(
            session, keys, name=DEFAULT_TENANT_NAME, domain=DEFAULT_TENANT_DOMAIN, is_default=True
        )
        return await create_application(
            session, tenant.id, SYSTEM, name="TrustPlane admin", permissions=ADMIN_PERMISSIONS
        )
