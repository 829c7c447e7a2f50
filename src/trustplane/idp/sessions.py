"""Browser sessions: the signed-in state behind the ``tp_session`` cookie. The cookie carries a random
secret; the table keeps only its SHA-256 (a high-entropy token needs no slow hash), so a database leak
signs nobody in. A session ends when it expires, is revoked (logout, continuous access evaluation) or its
user is disabled or deleted."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, String, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.responses import Response

from trustplane.core.clock import to_utc, utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id
from trustplane.core.repository import TenantRepository
from trustplane.directory.repository import UserRepository

SESSION_COOKIE = "tp_session"
SESSION_LIFETIME = timedelta(hours=12)
_TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is refreshed at most this often


class BrowserSession(Base):
    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the cookie secret
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[list[str]] = mapped_column(JSONType, default=list)
    mfa_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), default=None)


class BrowserSessionRepository(TenantRepository[BrowserSession]):
    model = BrowserSession

    async def by_secret_hash(self, secret_hash: str) -> BrowserSession | None:
        stmt = self.select().where(BrowserSession.secret_hash == secret_hash)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def revoke_for_user(
        self, user_id: str, reason: str, now: datetime, *, keep_session_id: str | None = None
    ) -> int:
        stmt = (
            update(BrowserSession)
            .where(
                BrowserSession.tenant_id == self.tenant_id,
                BrowserSession.user_id == user_id,
                BrowserSession.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoked_reason=reason[:64])
            .execution_options(synchronize_session=False)
        )
        if keep_session_id is not None:
            stmt = stmt.where(BrowserSession.id != keep_session_id)
        result: Any = await self.session.execute(stmt)
        return int(result.rowcount or 0)


def secret_digest(secret: str) -> str:
    """How the idp stores its high-entropy secrets (session cookies, codes, refresh tokens): SHA-256 hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_session(
    session: AsyncSession, tenant_id: str, user_id: str, *, amr: list[str], now: datetime | None = None
) -> tuple[BrowserSession, str]:
    """A new signed-in session; returns the row and the cookie value (shown once, stored only hashed)."""
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    row = BrowserSessionRepository(session, tenant_id).add(
        BrowserSession(
            id=new_id(),
            user_id=user_id,
            secret_hash=secret_digest(secret),
            auth_time=now,
            amr=list(dict.fromkeys(amr)),
            mfa_time=now if "mfa" in amr else None,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    await session.flush()
    return row, secret


async def current_session(
    session: AsyncSession, tenant_id: str, cookie_value: str | None, *, now: datetime | None = None
) -> BrowserSession | None:
    """The live session the cookie names, or None (no cookie, unknown, expired, revoked, user disabled or
    gone). Takes a writable session: ``last_seen_at`` is refreshed now and then."""
    if not cookie_value or len(cookie_value) > 128:
        return None
    row = await BrowserSessionRepository(session, tenant_id).by_secret_hash(secret_digest(cookie_value))
    now = now or utcnow()
    if row is None or row.revoked_at is not None or to_utc(row.expires_at) <= now:
        return None
    user = await UserRepository(session, tenant_id).get(row.user_id)
    if user is None or not user.account_enabled:
        return None
    if now - to_utc(row.last_seen_at) > _TOUCH_EVERY:
        row.last_seen_at = now
    return row


async def add_mfa(
    session: AsyncSession, browser_session: BrowserSession, method: str, *, now: datetime | None = None
) -> None:
    """Record a completed second factor (``method`` as an amr value: "otp", "fido", …) on the session."""
    now = now or utcnow()
    amr = list(browser_session.amr or [])
    for value in (method, "mfa"):
        if value not in amr:
            amr.append(value)
    browser_session.amr = amr
    browser_session.mfa_time = now
    await session.flush()


async def revoke_session(
    session: AsyncSession, browser_session: BrowserSession, reason: str, *, now: datetime | None = None
) -> None:
    if browser_session.revoked_at is None:
        browser_session.revoked_at = now or utcnow()
        browser_session.revoked_reason = reason[:64]
        await session.flush()


async def revoke_user_sessions(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    reason: str,
    *,
    keep_session_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """End every live browser session of the user (but ``keep_session_id``, e.g. the session in which the
    user just changed their own password); returns how many were ended."""
    return await BrowserSessionRepository(session, tenant_id).revoke_for_user(
        user_id, reason, now or utcnow(), keep_session_id=keep_session_id
    )


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookie_path(tenant_segment: str) -> str:
    return f"/{tenant_segment}/"


def set_session_cookie(
    response: Response,
    request: Request,
    tenant_segment: str,
    cookie_value: str,
    *,
    max_age: int | None = None,
) -> None:
    """HttpOnly, SameSite=Lax, Path=/{tenant}/ (the tenant as it appears in the URL), Secure unless the
    request is plain http to a loopback host (a developer's machine)."""
    secure = not (request.url.scheme == "http" and _is_loopback(request.url.hostname or ""))
    response.set_cookie(
        SESSION_COOKIE,
        cookie_value,
        max_age=max_age if max_age is not None else int(SESSION_LIFETIME.total_seconds()),
        path=cookie_path(tenant_segment),
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request, tenant_segment: str) -> None:
    secure = not (request.url.scheme == "http" and _is_loopback(request.url.hostname or ""))
    response.delete_cookie(
        SESSION_COOKIE, path=cookie_path(tenant_segment), secure=secure, httponly=True, samesite="lax"
    )
