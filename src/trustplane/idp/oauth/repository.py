"""Every query of the authorization server, scoped by tenant through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from trustplane.core.repository import TenantRepository
from trustplane.idp.oauth.models import AuthorizationCode, Consent, OAuthGrant, RefreshToken


class GrantRepository(TenantRepository[OAuthGrant]):
    model = OAuthGrant

    async def revoke(self, grant_ids: Sequence[str], reason: str, now: datetime) -> int:
        if not grant_ids:
            return 0
        return await self._revoke_where(OAuthGrant.id.in_(list(grant_ids)), reason=reason, now=now)

    async def revoke_for_user(self, user_id: str, reason: str, now: datetime) -> int:
        return await self._revoke_where(OAuthGrant.user_id == user_id, reason=reason, now=now)

    async def revoke_for_session(self, session_id: str, reason: str, now: datetime) -> int:
        return await self._revoke_where(OAuthGrant.session_id == session_id, reason=reason, now=now)

    async def _revoke_where(self, criterion: Any, *, reason: str, now: datetime) -> int:
        stmt = (
            update(OAuthGrant)
            .where(OAuthGrant.tenant_id == self.tenant_id, OAuthGrant.revoked_at.is_(None), criterion)
            .values(revoked_at=now, revoked_reason=reason[:64])
            .execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(stmt)
        return int(result.rowcount or 0)

    async def revoked_at(self, grant_id: str) -> tuple[bool, datetime | None]:
        """(exists, revoked_at) of a grant, read as a record (a read-only session reads it outside)."""
        stmt = select(OAuthGrant.__table__.c.revoked_at).where(
            OAuthGrant.__table__.c.tenant_id == self.tenant_id, OAuthGrant.__table__.c.id == grant_id
        )
        row = await self.fetch_record(stmt, {})
        return (row is not None, row[0] if row is not None else None)


class AuthorizationCodeRepository(TenantRepository[AuthorizationCode]):
    model = AuthorizationCode

    async def by_hash(self, code_hash: str) -> AuthorizationCode | None:
        stmt = self.select().where(AuthorizationCode.code_hash == code_hash)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def claim(self, code_id: str, grant_id: str, now: datetime) -> bool:
        """Mark the code redeemed, atomically: of two concurrent redemptions exactly one wins."""
        stmt = (
            update(AuthorizationCode)
            .where(
                AuthorizationCode.tenant_id == self.tenant_id,
                AuthorizationCode.id == code_id,
                AuthorizationCode.redeemed_at.is_(None),
            )
            .values(redeemed_at=now, grant_id=grant_id)
            .execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(stmt)
        return bool(result.rowcount)


class RefreshTokenRepository(TenantRepository[RefreshToken]):
    model = RefreshToken

    async def by_hash(self, token_hash: str) -> RefreshToken | None:
        stmt = self.select().where(RefreshToken.token_hash == token_hash)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def spend(self, token_id: str, now: datetime) -> bool:
        """Mark the token used, atomically: a token can be exchanged once."""
        stmt = (
            update(RefreshToken)
            .where(
                RefreshToken.tenant_id == self.tenant_id,
                RefreshToken.id == token_id,
                RefreshToken.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(stmt)
        return bool(result.rowcount)


class ConsentRepository(TenantRepository[Consent]):
    model = Consent

    async def for_user(self, application_id: str, user_id: str) -> list[Consent]:
        """The admin's consent for everyone (user_id NULL) and the user's own."""
        stmt = self.select().where(
            Consent.application_id == application_id,
            or_(Consent.user_id.is_(None), Consent.user_id == user_id),
        )
        return list((await self.session.execute(stmt)).scalars())

    async def own(self, application_id: str, user_id: str | None) -> Consent | None:
        criterion = Consent.user_id.is_(None) if user_id is None else Consent.user_id == user_id
        stmt = self.select().where(Consent.application_id == application_id, criterion)
        return (await self.session.execute(stmt)).scalars().first()
