"""Every query of the sign-in part, tenant-scoped through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from trustplane.core.ids import new_id
from trustplane.core.repository import TenantRepository
from trustplane.idp.signin.models import (
    LockoutCounter,
    RecoveryCode,
    SignInFlow,
    SignInPolicy,
    TotpCredential,
    WebAuthnCredential,
)
from trustplane.protection.models import SignIn


class FlowRepository(TenantRepository[SignInFlow]):
    model = SignInFlow

    async def by_token_hash(self, token_hash: str, now: datetime) -> SignInFlow | None:
        stmt = self.select().where(SignInFlow.token_hash == token_hash, SignInFlow.expires_at > now)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def purge_expired(self, now: datetime) -> None:
        await self.session.execute(self.delete_where(SignInFlow.expires_at <= now))


class LockoutRepository(TenantRepository[LockoutCounter]):
    model = LockoutCounter

    async def for_subjects(self, subjects: Sequence[str]) -> dict[str, LockoutCounter]:
        # The counters move in SQL (count_failure, lock): always read the rows afresh.
        stmt = (
            self.select()
            .where(LockoutCounter.subject.in_(list(subjects)))
            .execution_options(populate_existing=True)
        )
        return {c.subject: c for c in (await self.session.execute(stmt)).scalars()}

    async def count_failure(self, subject: str, now: datetime, window_start: datetime) -> tuple[int, int]:
        """One more failure for the subject, in SQL so concurrent failures all count; a count older than
        ``window_start`` starts again. Returns (failures, lockouts so far)."""
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await self.session.execute(
            insert(LockoutCounter)
            .values(id=new_id(), tenant_id=self.tenant_id, subject=subject, failures=0, window_started_at=now)
            .values(lockouts=0)
            .on_conflict_do_nothing(index_elements=["tenant_id", "subject"])
        )
        stale = LockoutCounter.window_started_at < window_start
        result = await self.session.execute(
            self._update(subject)
            .values(
                failures=case((stale, 1), else_=LockoutCounter.failures + 1),
                window_started_at=case((stale, now), else_=LockoutCounter.window_started_at),
            )
            .returning(LockoutCounter.failures, LockoutCounter.lockouts)
        )
        failures, lockouts = result.one()
        return int(failures), int(lockouts)

    async def lock(self, subject: str, until: datetime, lockouts: int, now: datetime) -> None:
        await self.session.execute(
            self._update(subject).values(
                locked_until=until, lockouts=lockouts, failures=0, window_started_at=now
            )
        )

    async def reset(self, subject: str) -> None:
        await self.session.execute(self._update(subject).values(failures=0))

    def _update(self, subject: str):  # type: ignore[no-untyped-def]
        return (
            update(LockoutCounter)
            .where(LockoutCounter.tenant_id == self.tenant_id, LockoutCounter.subject == subject)
            .execution_options(synchronize_session=False)
        )


class TotpRepository(TenantRepository[TotpCredential]):
    model = TotpCredential

    async def for_user(self, user_id: str) -> TotpCredential | None:
        stmt = self.select().where(TotpCredential.user_id == user_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class WebAuthnRepository(TenantRepository[WebAuthnCredential]):
    model = WebAuthnCredential

    async def for_user(self, user_id: str) -> Sequence[WebAuthnCredential]:
        stmt = (
            self.select().where(WebAuthnCredential.user_id == user_id).order_by(WebAuthnCredential.created_at)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def by_credential_id(self, credential_id: str) -> WebAuthnCredential | None:
        stmt = self.select().where(WebAuthnCredential.credential_id == credential_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class RecoveryCodeRepository(TenantRepository[RecoveryCode]):
    model = RecoveryCode

    async def unused(self, user_id: str, code_hash: str) -> RecoveryCode | None:
        stmt = self.select().where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == code_hash,
            RecoveryCode.used_at.is_(None),
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_unused(self, user_id: str) -> int:
        stmt = self.select(RecoveryCode.id).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
        return len(list((await self.session.execute(stmt)).scalars()))

    async def replace_all(self, user_id: str, hashes: Sequence[str]) -> None:
        await self.session.execute(self.delete_where(RecoveryCode.user_id == user_id))
        for h in hashes:
            self.add(RecoveryCode(user_id=user_id, code_hash=h))


class SignInPolicyRepository(TenantRepository[SignInPolicy]):
    model = SignInPolicy

    async def current(self) -> SignInPolicy | None:
        return (await self.session.execute(self.select())).scalar_one_or_none()


class FamiliarAddressRepository(TenantRepository[SignIn]):
    """Reads the sign-in log: has this user signed in successfully from this address before?"""

    model = SignIn

    async def is_familiar(self, user_id: str, ip_address: str, since: datetime) -> bool:
        inner = self.select(SignIn.id).where(
            SignIn.user_id == user_id,
            SignIn.ip_address == ip_address,
            SignIn.error_code == 0,
            SignIn.created_at >= since,
        )
        return bool((await self.session.execute(select(exists(inner)))).scalar())
