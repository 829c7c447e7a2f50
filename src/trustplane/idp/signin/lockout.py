"""Smart lockout. Failed passwords count against the source address (every account tried from it — a
password spray from one address locks that address) and against the account, in two buckets: attempts from
addresses the user signed in from before (familiar) and from any other (unfamiliar). An attacker who locks
the unfamiliar bucket does not lock the user out of their familiar address — Entra's smart-lockout idea.
Each lockout lasts twice as long as the one before, up to an hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import to_utc
from trustplane.idp.signin.models import SignInPolicy
from trustplane.idp.signin.repository import FamiliarAddressRepository, LockoutRepository

WINDOW = timedelta(minutes=15)  # failures older than this start the count again
FAMILIAR_FOR = timedelta(days=90)
MAX_LOCK = timedelta(hours=1)
IP_FACTOR = 2  # an address may fail twice the account threshold (several people behind one NAT)


@dataclass(frozen=True, slots=True)
class Subjects:
    ip: str | None
    user: str | None

    def all(self) -> list[str]:
        return [s for s in (self.ip, self.user) if s is not None]


async def subjects_for(
    session: AsyncSession, tenant_id: str, user_id: str | None, ip_address: str | None, now: datetime
) -> Subjects:
    ip = f"ip:{ip_address}" if ip_address else None
    user = None
    if user_id is not None:
        familiar = ip_address is not None and await FamiliarAddressRepository(session, tenant_id).is_familiar(
            user_id, ip_address, now - FAMILIAR_FOR
        )
        user = f"user:{user_id}:{'familiar' if familiar else 'unfamiliar'}"
    return Subjects(ip, user)


def _threshold(subject: str, policy: SignInPolicy) -> int:
    return policy.lockout_threshold * (IP_FACTOR if subject.startswith("ip:") else 1)


async def locked(session: AsyncSession, tenant_id: str, subjects: Subjects, now: datetime) -> str | None:
    """Which subject ("ip" or "user") is locked now, if any."""
    counters = await LockoutRepository(session, tenant_id).for_subjects(subjects.all())
    for subject, counter in counters.items():
        if counter.locked_until is not None and to_utc(counter.locked_until) > now:
            return "ip" if subject.startswith("ip:") else "user"
    return None


async def record_failure(
    session: AsyncSession, tenant_id: str, subjects: Subjects, policy: SignInPolicy, now: datetime
) -> bool:
    """Count one failed password against each subject; lock a subject that reaches its threshold. True when
    this failure locked something."""
    repo = LockoutRepository(session, tenant_id)
    locked_now = False
    for subject in subjects.all():
        failures, lockouts = await repo.count_failure(subject, now, now - WINDOW)
        if failures >= _threshold(subject, policy):
            duration = min(timedelta(seconds=policy.lockout_seconds * 2**lockouts), MAX_LOCK)
            await repo.lock(subject, now + duration, lockouts + 1, now)
            locked_now = True
    return locked_now


async def record_success(session: AsyncSession, tenant_id: str, subjects: Subjects) -> None:
    """A correct password clears the account's bucket it came through (never the address's: a sprayer
    holding one valid account must not reset the count of the address)."""
    if subjects.user is not None:
        await LockoutRepository(session, tenant_id).reset(subjects.user)
