"""Only a sign-in that succeeded teaches the user's profile: ``assess`` with ``learn=False`` (what
TrustPlane's sign-in and ingestion pass) learns nothing, ``learn`` refuses a failed or blocked sign-in, and
a blocked attempt from a new country and device leaves the next attempt from there as unfamiliar as the
first; end to end, a sign-in blocked by conditional access adds nothing to the user's counts and a granted
one does."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tests.idp.signin.support import BLOCK, Browser, make_policy
from tests.idp.signin.support import make_user as make_directory_user
from tests.protection.support import CHROME, T0, assess, make_user, write
from tests.support.server import TenantHandle, TestServer
from trustplane.protection import service
from trustplane.protection.models import UserFeatureCounts
from trustplane.protection.repository import decode_counts
from trustplane.protection.service import SignInAttempt

FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0"
ABROAD = {"ip_address": "1.128.0.10", "user_agent": FIREFOX_MAC, "device_detail": {"deviceId": "dev-new"}}
BLOCKED_BY_CA = 53003


def counts(server: TestServer, tenant_id: str, user_id: str) -> dict[tuple[str, str], int]:
    async def load(session: Any) -> dict[tuple[str, str], int]:
        stored = await session.scalar(
            select(UserFeatureCounts.counts).where(
                UserFeatureCounts.tenant_id == tenant_id, UserFeatureCounts.user_id == user_id
            )
        )
        return {(f, v): n for f, values in decode_counts(stored).items() for v, n in values.items()}

    return write(server, load)


def attempt_later(
    server: TestServer, tenant_id: str, user: Any, at: Any, *, blocked: bool
) -> tuple[service.Assessment, bool]:
    """An attempt from abroad assessed as the sign-in does (``learn=False``); conditional access blocks it
    or lets it through, then the sign-in calls ``learn``. The assessment and what ``learn`` answered."""
    attempt = SignInAttempt(user_principal_name=user.user_principal_name, user_id=user.id, at=at, **ABROAD)

    async def run(session: Any) -> tuple[service.Assessment, bool]:
        assessed = await service.assess(session, tenant_id, attempt, learn=False)
        if blocked:
            assessed.sign_in.error_code = BLOCKED_BY_CA
        return assessed, await service.learn(session, tenant_id, assessed)

    return write(server, run)


def _history(server: TestServer, tenant_id: str, users: list[Any]) -> None:
    for n in range(10):
        for i, user in enumerate(users):
            at = T0 + timedelta(days=6 * n / 9, minutes=i)
            assess(server, tenant_id, user, ip_address=f"81.2.{60 + i}.{10 + i}", at=at, user_agent=CHROME)


def test_a_blocked_attempt_does_not_make_the_next_one_from_there_familiar(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"b{i}") for i in range(5)]
    blocked_user, granted_user = users[0], users[1]
    # In the learning period: the attempt raises no risk, so only its outcome decides whether it is learned.
    first = T0 - timedelta(days=1)
    blocked, learned_blocked = attempt_later(server, tenant_id, blocked_user, first, blocked=True)
    granted, learned_granted = attempt_later(server, tenant_id, granted_user, first, blocked=False)
    assert blocked.risk_level == "none" and granted.risk_level == "none"
    assert (learned_blocked, learned_granted) == (False, True)
    assert ("ip", "=1.128.0.10") not in counts(server, tenant_id, blocked_user.id)
    assert ("dev", "=dev-new") not in counts(server, tenant_id, blocked_user.id)
    assert counts(server, tenant_id, granted_user.id)[("dev", "=dev-new")] == 1

    _history(server, tenant_id, users)
    later = T0 + timedelta(days=7)
    again_blocked, _ = attempt_later(server, tenant_id, blocked_user, later, blocked=True)
    again_granted, _ = attempt_later(server, tenant_id, granted_user, later, blocked=True)
    # Never learned: as unfamiliar as an attacker's first attempt; learned once: more familiar than that.
    assert "unfamiliarFeatures" in again_blocked.sign_in.risk_event_types
    assert again_blocked.risk_score > again_granted.risk_score


def test_learn_refuses_failed_and_risky_sign_ins_and_learns_once(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "once")
    base = SignInAttempt(user_principal_name=user.user_principal_name, user_id=user.id, at=T0, **ABROAD)

    async def run(session: Any) -> tuple[bool, bool, bool, bool]:
        failed = await service.assess(
            session, tenant_id, dataclasses.replace(base, error_code=50126, password_valid=False), learn=False
        )
        ok = await service.assess(session, tenant_id, base, learn=False)
        risky = await service.assess(session, tenant_id, base, learn=False)
        risky.sign_in.risk_level_aggregated = "high"
        return (
            await service.learn(session, tenant_id, failed),
            await service.learn(session, tenant_id, risky.sign_in),
            await service.learn(session, tenant_id, ok),
            await service.learn(session, tenant_id, ok),
        )

    assert write(server, run) == (False, False, True, False)
    assert counts(server, tenant_id, user.id)[("ip", "#total")] == 1


def test_assess_without_learn_teaches_nothing(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "nolearn")
    attempt = SignInAttempt(user_principal_name=user.user_principal_name, user_id=user.id, at=T0, **ABROAD)
    write(server, lambda s: service.assess(s, tenant_id, attempt, learn=False))
    assert counts(server, tenant_id, user.id) == {}


def test_sign_in_blocked_by_conditional_access_is_not_learned(server: TestServer) -> None:
    admin: TenantHandle = server.tenant(
        "Directory.ReadWrite.All", "Policy.ReadWrite.ConditionalAccess", "AuditLog.Read.All"
    )
    with admin.client() as c:
        user = make_directory_user(c, admin.domain, "learnblock")
        policy = make_policy(c, "Block everyone", BLOCK)
    with Browser(admin, ip="203.0.113.77") as b:
        blocked = b.follow(b.sign_in(user["userPrincipalName"]))
    assert blocked.status_code == 403
    assert counts(server, admin.tenant_id, user["id"]) == {}
    with admin.client() as c:
        assert c.delete(f"/v1.0/identity/conditionalAccess/policies/{policy['id']}").status_code == 204
    with Browser(admin, ip="203.0.113.77") as b:
        b.follow(b.sign_in(user["userPrincipalName"]))
        assert b.session_cookie
    learned = counts(server, admin.tenant_id, user["id"])
    assert learned[("ip", "=203.0.113.77")] == 1 and learned[("ip", "#total")] == 1
