"""Continuous access evaluation. Disabling a user, resetting their password or their risk turning high
ends, in the same transaction, their browser sessions and every grant (so refresh tokens stop at once),
and moves the user's ``sign_in_sessions_valid_from``; resource APIs then refuse the user's delegated
access tokens issued before it with a claims challenge, as Entra does. The timestamp lives on the user row,
which every process's row cache keeps fresh, so the check costs no extra query where the row is cached."""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import to_utc, utcnow
from trustplane.core.errors import ClaimsChallenge, Unauthenticated
from trustplane.directory.models import User
from trustplane.directory.repository import UserRepository
from trustplane.idp.oauth.repository import GrantRepository
from trustplane.idp.sessions import revoke_user_sessions

# Why a user's access was revoked (the grants' and sessions' revoked_reason).
USER_DISABLED = "userDisabled"
PASSWORD_RESET = "passwordReset"  # noqa: S105  (a revocation reason)
USER_RISK_HIGH = "userRiskHigh"
REVOKED_BY_ADMIN = "revokeSignInSessions"


def epoch_ceil(value: datetime) -> int:
    """Tokens carry whole seconds: a token is acceptable when its ``nbf`` is at least this."""
    return math.ceil(to_utc(value).timestamp())


def not_before_for(valid_from: datetime | None, now: int) -> int:
    """The ``nbf`` / ``iat`` of a token minted now for a user whose tokens are valid from ``valid_from``:
    never earlier than it (a token minted within the second of a revocation still passes the check)."""
    return max(now, epoch_ceil(valid_from)) if valid_from is not None else now


def claims_challenge(valid_from: int) -> str:
    """The ``WWW-Authenticate`` value of Entra's CAE claims challenge (base64 of the claims request)."""
    request = {"access_token": {"nbf": {"essential": True, "value": str(valid_from)}}}
    claims = base64.b64encode(json.dumps(request, separators=(",", ":")).encode()).decode()
    return f'Bearer realm="", error="insufficient_claims", claims="{claims}"'


async def revoke_user(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    reason: str,
    *,
    keep_session_id: str | None = None,
    now: datetime | None = None,
) -> None:
    """End the user's sessions (but ``keep_session_id``) and grants, and refuse their older access tokens.
    Runs in the caller's transaction: it takes effect when that commits, for every process."""
    now = now or utcnow()
    user = await UserRepository(session, tenant_id).get(user_id)
    if user is None:
        return
    user.sign_in_sessions_valid_from = now
    await revoke_user_sessions(session, tenant_id, user_id, reason, keep_session_id=keep_session_id, now=now)
    await GrantRepository(session, tenant_id).revoke_for_user(user_id, reason, now)
    await session.flush()


def still_valid(user: User | None, issued_at: datetime) -> bool:
    """Whether a code or refresh token issued at ``issued_at`` may still be redeemed for ``user``: the user
    exists, is enabled, and nothing revoked their access since (checked where tokens are redeemed, so it
    holds within the request after the revocation committed)."""
    if user is None or not user.account_enabled:
        return False
    valid_from = user.sign_in_sessions_valid_from
    return valid_from is None or to_utc(valid_from) <= to_utc(issued_at)


async def check_delegated_token(
    session: AsyncSession, tenant_id: str, user_id: str, not_before: int, grant_id: str | None
) -> None:
    """Raise unless the user may still use a token of theirs with this ``nbf`` from this grant: the user
    exists and is enabled, nothing revoked their tokens since, and the grant is live."""
    user = await UserRepository(session, tenant_id).record(user_id)
    if user is None:
        raise Unauthenticated("The token's user no longer exists.")
    valid_from = user.sign_in_sessions_valid_from
    if valid_from is not None and not_before < epoch_ceil(valid_from):
        raise ClaimsChallenge(
            "The user's sessions were revoked after this token was issued; sign in again.",
            www_authenticate=claims_challenge(epoch_ceil(valid_from)),
        )
    if not user.account_enabled:
        raise ClaimsChallenge(
            "The user's account is disabled.", www_authenticate=claims_challenge(epoch_ceil(utcnow()))
        )
    if grant_id is not None:
        exists, revoked_at = await GrantRepository(session, tenant_id).revoked_at(grant_id)
        if not exists or revoked_at is not None:
            raise Unauthenticated("The token's grant was revoked.")
