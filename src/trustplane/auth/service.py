"""Credentials: app registrations with client secrets, and long-lived API tokens.
Secrets are shown once and stored as argon2id hashes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.models import ApiToken
from trustplane.auth.permissions import KNOWN_PERMISSIONS, Principal
from trustplane.auth.secrets import hash_secret, random_secret, verify_secret
from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound, Unauthenticated
from trustplane.core.events import Actor, EventSpec, emit
from trustplane.core.ids import is_uuid, new_id
from trustplane.core.repository import TenantRepository
from trustplane.directory.models import Application, ClientSecret

API_TOKEN_PREFIX = "tpat"  # noqa: S105  (a public prefix, not a secret)


def check_permissions(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - KNOWN_PERMISSIONS)
    if unknown:
        raise BadRequest(f"Unknown permission(s): {', '.join(unknown)}.")
    return sorted(set(permissions))


@dataclass(frozen=True)
class IssuedApp:
    tenant_id: str
    object_id: str
    client_id: str
    client_secret: str
    permissions: list[str]


class ApplicationRepository(TenantRepository[Application]):
    model = Application

    async def by_client_id(self, client_id: str) -> Application | None:
        result = await self.session.execute(self.select().where(Application.app_id == client_id))
        return result.scalar_one_or_none()


class ClientSecretRepository(TenantRepository[ClientSecret]):
    model = ClientSecret

    async def for_application(self, application_id: str) -> list[ClientSecret]:
        result = await self.session.execute(
            self.select().where(ClientSecret.application_id == application_id)
        )
        return list(result.scalars())


async def create_application(
    session: AsyncSession, tenant_id: str, actor: Actor, *, name: str, permissions: list[str]
) -> IssuedApp:
    perms = check_permissions(permissions)
    app = Application(id=new_id(), app_id=new_id(), display_name=name, permissions=perms)
    secret = await add_application(session, tenant_id, actor, app, with_secret=True)
    assert secret is not None
    return IssuedApp(tenant_id, app.id, app.app_id, secret, perms)


async def add_application(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    app: Application,
    *,
    with_secret: bool,
    details: dict[str, object] | None = None,
) -> str | None:
    """Store a new app registration (with a client secret, returned once, unless it is a public client)
    and its ``directory.application.created`` event."""
    ApplicationRepository(session, tenant_id).add(app)
    secret = random_secret(30) if with_secret else None
    if secret is not None:
        ClientSecretRepository(session, tenant_id).add(
            ClientSecret(application_id=app.id, hint=secret[:3], secret_hash=hash_secret(secret))
        )
    await session.flush()
    data = {"displayName": app.display_name, "appId": app.app_id, "permissions": app.permissions}
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("directory.application.created", "application", app.id, {**data, **(details or {})}),
    )
    return secret


async def authenticate_client(
    session: AsyncSession, tenant_id: str, client_id: str, secret: str
) -> Application:
    """Client credentials check. One error for every failure: nothing tells which part was wrong."""
    failure = Unauthenticated("Invalid client credentials.", code="invalid_client")
    if not is_uuid(client_id):
        raise failure
    app = await ApplicationRepository(session, tenant_id).by_client_id(client_id)
    if app is None or not await client_secret_matches(session, tenant_id, app, secret):
        raise failure
    return app


class VerifiedClientSecrets:
    """Client secrets once verified with argon2id, remembered by the SHA-256 of the secret, per secret row.

    Safe because a client secret is 240 random bits (``random_secret(30)``): for such a secret SHA-256 is
    as strong as argon2id (nothing to brute-force), and the digest lives only in this process's memory.
    The secret rows are still read on every request, so a deleted or expired secret stops working at once;
    the key includes the stored hash, so a row can never vouch for another secret; a wrong secret is never
    remembered. argon2id then costs one verification per secret per process instead of one per token
    (docs/benchmarks.md, "Single sign-on: token endpoint")."""

    _MAX = 4096

    def __init__(self) -> None:
        self._digests: dict[tuple[str, str], bytes] = {}

    async def matches(self, stored: ClientSecret, secret: str) -> bool:
        key = (stored.id, stored.secret_hash)
        digest = hashlib.sha256(secret.encode()).digest()
        known = self._digests.get(key)
        if known is not None:
            return hmac.compare_digest(known, digest)
        # argon2id takes tens of milliseconds by design: off the event loop.
        if not await asyncio.to_thread(verify_secret, stored.secret_hash, secret):
            return False
        if len(self._digests) >= self._MAX:
            self._digests.clear()  # bounded; a miss only costs one argon2id verification
        self._digests[key] = digest
        return True


VERIFIED_CLIENT_SECRETS = VerifiedClientSecrets()


async def client_secret_matches(session: AsyncSession, tenant_id: str, app: Application, secret: str) -> bool:
    """Whether ``secret`` is one of the app's unexpired client secrets."""
    now = utcnow()
    for stored in await ClientSecretRepository(session, tenant_id).for_application(app.id):
        if stored.expires_at is not None and stored.expires_at < now:
            continue
        if await VERIFIED_CLIENT_SECRETS.matches(stored, secret):
            return True
    return False


@dataclass(frozen=True)
class IssuedToken:
    id: str
    tenant_id: str
    name: str
    token: str
    permissions: list[str]


class ApiTokenRepository(TenantRepository[ApiToken]):
    model = ApiToken


async def create_api_token(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    *,
    name: str,
    permissions: list[str],
    expires_at: datetime | None = None,
    settings: dict[str, object] | None = None,
) -> IssuedToken:
    perms = check_permissions(permissions)
    token_id = new_id()
    secret = random_secret(32)
    ApiTokenRepository(session, tenant_id).add(
        ApiToken(
            id=token_id,
            name=name,
            secret_hash=hash_secret(secret),
            permissions=perms,
            expires_at=expires_at,
            settings=settings or {},
        )
    )
    await session.flush()
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("auth.api_token.created", "apiToken", token_id, {"name": name, "permissions": perms}),
    )
    return IssuedToken(
        token_id, tenant_id, name, f"{API_TOKEN_PREFIX}_{token_id.replace('-', '')}_{secret}", perms
    )


async def revoke_api_token(session: AsyncSession, tenant_id: str, actor: Actor, token_id: str) -> None:
    token = await ApiTokenRepository(session, tenant_id).get(token_id)
    if token is None:
        raise NotFound(f"No API token {token_id} in this tenant.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await emit(session, tenant_id, actor, EventSpec("auth.api_token.revoked", "apiToken", token_id, {}))


async def list_api_tokens(session: AsyncSession, tenant_id: str) -> list[ApiToken]:
    repo = ApiTokenRepository(session, tenant_id)
    result = await session.execute(repo.select().order_by(ApiToken.created_at))
    return list(result.scalars())


class ApiTokenVerifier:
    """Verifies ``tpat_…`` tokens. argon2 is deliberately slow, so a secret once verified is remembered by its
    SHA-256 digest; the row is still read on every call, so revocation and expiry take effect at once."""

    def __init__(self) -> None:
        self._verified: dict[str, bytes] = {}

    @staticmethod
    def split(raw: str) -> tuple[str, str] | None:
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != API_TOKEN_PREFIX or len(parts[1]) != 32:
            return None
        hexid = parts[1]
        token_id = f"{hexid[:8]}-{hexid[8:12]}-{hexid[12:16]}-{hexid[16:20]}-{hexid[20:]}"
        return (token_id, parts[2]) if is_uuid(token_id) else None

    async def verify(self, session: AsyncSession, raw: str) -> Principal:
        parts = self.split(raw)
        if parts is None:
            raise Unauthenticated("The API token is malformed.")
        token_id, secret = parts
        # Deliberately unscoped: the token itself names its tenant; this is the one lookup that finds it.
        row = (await session.execute(select(ApiToken).where(ApiToken.id == token_id))).scalar_one_or_none()
        failure = Unauthenticated("The API token is invalid, expired or revoked.")
        if row is None or row.revoked_at is not None:
            raise failure
        if row.expires_at is not None and row.expires_at < utcnow():
            raise failure
        digest = hashlib.sha256(secret.encode()).digest()
        known = self._verified.get(token_id)
        if known is None or not hmac.compare_digest(known, digest):
            if not verify_secret(row.secret_hash, secret):
                raise failure
            self._verified[token_id] = digest
        return Principal(
            tenant_id=row.tenant_id,
            kind="api_token",
            id=row.id,
            name=row.name,
            roles=frozenset(row.permissions),
            settings=dict(row.settings),
        )
