"""Signing keys: one active RSA key per tenant (RS256), rotated on demand (``trustplane keys rotate``) and
on schedule (a key older than ``rotate_after`` is replaced the next time a token is signed), published as a
JWKS. Retired keys stay published until every token they signed has expired."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.models import SigningKey
from trustplane.core.clock import to_utc, utcnow
from trustplane.core.ids import new_id

ALGORITHM = "RS256"
_ACTIVE_TTL_SECONDS = 60.0
KEY_MAX_AGE = timedelta(days=30)


class KeyStore:
    """Per-process cache in front of the ``signing_keys`` table."""

    def __init__(self, token_lifetime_seconds: int, *, rotate_after: timedelta = KEY_MAX_AGE) -> None:
        self.token_lifetime = timedelta(seconds=token_lifetime_seconds)
        self.rotate_after = rotate_after
        self._by_kid: dict[str, tuple[str, RSAKey]] = {}
        self._active: dict[str, tuple[float, str]] = {}
        # When each cached kid was last checked against its row, so a retirement (made by any process)
        # takes effect here within the cache period.
        self._kid_checked: dict[str, float] = {}

    @staticmethod
    def _generate(kid: str) -> RSAKey:
        return RSAKey.generate_key(
            2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True
        )

    async def create_key(self, session: AsyncSession, tenant_id: str) -> SigningKey:
        kid = new_id().replace("-", "")
        key = self._generate(kid)
        row = SigningKey(kid=kid, tenant_id=tenant_id, private_jwk=dict(key.as_dict(private=True)))
        session.add(row)
        await session.flush()
        self._by_kid[kid] = (tenant_id, key)
        self._active[tenant_id] = (time.monotonic(), kid)
        return row

    async def active_key(self, session: AsyncSession, tenant_id: str) -> RSAKey:
        cached = self._active.get(tenant_id)
        if cached and time.monotonic() - cached[0] < _ACTIVE_TTL_SECONDS and cached[1] in self._by_kid:
            return self._by_kid[cached[1]][1]
        result = await session.execute(
            select(SigningKey)
            .where(SigningKey.tenant_id == tenant_id, SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        )
        row = result.scalar_one_or_none()
        if row is None:
            row = await self.create_key(session, tenant_id)
        elif to_utc(row.created_at) + self.rotate_after < utcnow():
            # Scheduled rotation, in the signing request's transaction. Two processes may both rotate: each
            # new key is published and verifies, so the race costs one extra key, nothing else.
            await self.rotate(session, tenant_id)
            return self._by_kid[self._active[tenant_id][1]][1]
        key = self._remember(row)
        self._active[tenant_id] = (time.monotonic(), row.kid)
        return key

    def _remember(self, row: SigningKey) -> RSAKey:
        entry = self._by_kid.get(row.kid)
        if entry is None:
            entry = (row.tenant_id, RSAKey.import_key(row.private_jwk))
            self._by_kid[row.kid] = entry
        return entry[1]

    def fresh_key(self, kid: str) -> tuple[str, RSAKey] | None:
        """``key_for_kid`` without the database: the key if its row was checked within the cache period."""
        entry = self._by_kid.get(kid)
        checked = self._kid_checked.get(kid)
        if entry is not None and checked is not None and time.monotonic() - checked < _ACTIVE_TTL_SECONDS:
            return entry
        return None

    async def key_for_kid(self, session: AsyncSession, kid: str) -> tuple[str, RSAKey] | None:
        entry = self.fresh_key(kid)
        if entry is not None:
            return entry
        row = await session.get(SigningKey, kid)
        if row is None or (row.retired_at is not None and row.retired_at + self.token_lifetime < utcnow()):
            self._by_kid.pop(kid, None)
            self._kid_checked.pop(kid, None)
            return None
        self._remember(row)
        self._kid_checked[kid] = time.monotonic()
        return self._by_kid[kid]

    async def rotate(self, session: AsyncSession, tenant_id: str) -> str:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.tenant_id == tenant_id, SigningKey.retired_at.is_(None))
            .values(retired_at=utcnow())
        )
        row = await self.create_key(session, tenant_id)
        return row.kid

    async def jwks(self, session: AsyncSession, tenant_id: str) -> dict[str, Any]:
        cutoff = utcnow() - self.token_lifetime
        result = await session.execute(
            select(SigningKey)
            .where(SigningKey.tenant_id == tenant_id)
            .where((SigningKey.retired_at.is_(None)) | (SigningKey.retired_at > cutoff))
            .order_by(SigningKey.created_at.desc())
        )
        keys = []
        for row in result.scalars():
            public = dict(self._remember(row).as_dict(private=False))
            keys.append(public)
        return {"keys": keys}
