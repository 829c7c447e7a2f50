"""The per-process profile cache ``decide`` reads: a warm user's decision runs no SQL statement (the
tenant-wide counts from the tenant's snapshot, equal to reading them), a user's first touch is one statement,
a committed ``learn`` is in the cache at once (a rolled-back one is not), and a change of the user's risk in
this process or another reaches the next decision."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.protection.support import CHROME, T0, assess, make_user, write
from tests.support.server import TestServer
from trustplane.core.cache import follow_changes
from trustplane.core.db import driver_rows
from trustplane.core.events import SYSTEM
from trustplane.protection import cache, features, profiles, repository, service
from trustplane.protection.repository import FeatureCountRepository
from trustplane.protection.service import SignInAttempt

HOME = {"ip_address": "81.2.69.160", "user_agent": CHROME}


def statements_during(server: TestServer, action: Any) -> tuple[Any, int]:
    """The action's result (run in its own transaction) and the SQL statements it ran: through SQLAlchemy's
    cursor or straight on the driver (``core.db.driver_rows``)."""
    seen = 0

    def count(*_args: Any) -> None:
        nonlocal seen
        seen += 1

    async def counted_driver_rows(*args: Any) -> Any:
        count()
        return await driver_rows(*args)

    engine = server.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    repository.driver_rows = counted_driver_rows  # type: ignore[assignment]
    try:
        result = write(server, action)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        repository.driver_rows = driver_rows
    return result, seen


def test_a_warm_users_decision_runs_no_statement(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "warm")
    assess(server, tenant_id, user, at=T0, **HOME)  # first touch: loaded and cached
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=5), user_id=user.id, **HOME)
    decision, statements = statements_during(server, lambda s: service.decide(s, tenant_id, attempt))
    assert statements == 0
    assert decision.user is not None and decision.user.user_id == user.id
    profiles.clear()
    cold, statements = statements_during(server, lambda s: service.decide(s, tenant_id, attempt))
    assert statements > 0 and cold.profile is not None and decision.profile is not None
    # The same counts either way: the cache holds what the database holds.
    keys = service._wanted(decision.values)
    assert cold.profile.found(keys) == decision.profile.found(keys)
    assert (user.id, "ip", "#total") in cold.profile.found(keys)


def test_learning_reaches_the_cache_on_commit_only(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "commit")
    assess(server, tenant_id, user, at=T0, **HOME)
    before = dict(profiles.user(tenant_id, user.id, None).counts)  # type: ignore[union-attr]
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)

    async def rolled_back(session: Any) -> None:
        assessed = await service.assess(session, tenant_id, attempt, learn=False)
        await service.learn(session, tenant_id, assessed)
        await session.rollback()

    write(server, rolled_back)
    assert profiles.user(tenant_id, user.id, None).counts == before  # type: ignore[union-attr]
    write(server, lambda s: service.assess(s, tenant_id, attempt))
    after = profiles.user(tenant_id, user.id, None).counts  # type: ignore[union-attr]
    assert after[("ip", "#total")] == before[("ip", "#total")] + 1


def test_a_risk_change_in_this_process_reaches_the_next_decision(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "risk")
    assess(server, tenant_id, user, at=T0, **HOME)
    assert profiles.user(tenant_id, user.id, None) is not None
    write(server, lambda s: service.confirm_compromised(s, tenant_id, SYSTEM, [user.id]))
    result = assess(server, tenant_id, user, at=T0 + timedelta(minutes=1), **HOME)
    assert result.user_risk == "high"


def test_a_risk_change_by_another_process_reaches_the_next_decision(server: TestServer) -> None:
    """On PostgreSQL a write of the user's risk row by any process is notified (migration 0011) and drops
    the cached user here at once — not after the cache's TTL. The "other process" is a plain SQL UPDATE,
    which none of this process's own invalidation hooks see."""
    if server.backend != "postgresql":
        pytest.skip("SQLite has one process; there is no cross-process notification to test")
    caches = server.app.state.db.row_caches
    assert wait_until(lambda: caches is not None and caches.listening)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "elsewhere")
    notices: list[str] = []
    follow_changes("risky_users", notices.append)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, SYSTEM, [user.id]))
    write(server, lambda s: service.dismiss(s, tenant_id, SYSTEM, [user.id]))
    # The two commits' own notices arrive asynchronously; let them land before caching the user.
    assert wait_until(lambda: notices.count(user.id) >= 2)
    assert assess(server, tenant_id, user, at=T0, **HOME).user_risk == "none"
    assert profiles.user(tenant_id, user.id, None) is not None  # cached, risk "none"

    async def raise_elsewhere(session: Any) -> None:
        await session.execute(
            text(
                "UPDATE risky_users SET risk_level = 'high', risk_state = 'confirmedCompromised' "
                "WHERE id = :id"
            ),
            {"id": user.id},
        )

    write(server, raise_elsewhere)
    assert wait_until(lambda: profiles.user(tenant_id, user.id, None) is None)
    result = assess(server, tenant_id, user, at=T0 + timedelta(minutes=1), **HOME)
    assert result.user_risk == "high"


def wait_until(check: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def test_a_warm_decision_on_values_never_seen_reads_nothing_and_equals_a_fresh_read(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tenant-wide counts come from the tenant's snapshot, where a value absent has count 0: a new
    address, device and browser need no read, and the profile is the one a read of each value gives."""
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)  # tenant-wide increments written at once, not batched
    tenant_id = server.tenant().tenant_id
    seasoned, user = make_user(server, tenant_id, "seasoned"), make_user(server, tenant_id, "fresh")
    for day in range(3):
        assess(server, tenant_id, seasoned, at=T0 + timedelta(days=day), **HOME)
    assess(server, tenant_id, user, at=T0, **HOME)  # the user and the tenant's snapshot are loaded
    assert profiles.snapshot(tenant_id) is not None
    away = {"ip_address": "2.125.160.216", "user_agent": CHROME.replace("Windows NT 10.0", "Macintosh")}
    attempt = SignInAttempt(
        user.user_principal_name,
        T0 + timedelta(hours=2),
        user_id=user.id,
        device_detail={"deviceId": "never-seen"},
        **away,
    )
    warm, statements = statements_during(server, lambda s: service.decide(s, tenant_id, attempt))
    assert statements == 0
    assert warm.profile is not None
    keys = service._wanted(warm.values)
    found = warm.profile.found(keys)
    assert found[("*", "ip", "#total")] >= 4  # the sign-ins learned above, at least
    assert ("*", "ip", "=2.125.160.216") not in found  # never seen: 0
    # The per-value reads (a tenant too large for a snapshot) give the same counts.
    monkeypatch.setattr(profiles, "SNAPSHOT_MAX", 0)
    profiles.clear()
    read, statements = statements_during(server, lambda s: service.decide(s, tenant_id, attempt))
    assert profiles.snapshot(tenant_id) is None and statements >= 2
    assert read.profile is not None and read.profile.found(keys) == found
    # The model reads the same counts through either profile (the user is still learning, so the score is
    # computed here rather than by the decision).
    scores = [
        features.score(warm.values, p.counts(user.id), p.counts("*")) for p in (warm.profile, read.profile)
    ]
    assert scores[0] == scores[1] and 0 < scores[0] < 1


def test_the_snapshot_follows_what_this_process_commits_and_not_what_it_rolls_back(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each transaction the tenant's snapshot equals the table in the database (tenant-wide
    increments written at every sign-in here, instead of batched)."""
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "snap")
    assess(server, tenant_id, user, at=T0, **HOME)
    assert profiles.snapshot(tenant_id) == tenant_table(server, tenant_id)
    attempt = SignInAttempt(
        user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, ip_address="2.125.160.217"
    )

    async def rolled_back(session: Any) -> None:
        await service.assess(session, tenant_id, attempt)
        await session.rollback()

    write(server, rolled_back)
    assert profiles.snapshot(tenant_id) == tenant_table(server, tenant_id)
    assert ("ip", "=2.125.160.217") not in (profiles.snapshot(tenant_id) or {})
    write(server, lambda s: service.assess(s, tenant_id, attempt))
    assert profiles.snapshot(tenant_id) == tenant_table(server, tenant_id)
    assert (profiles.snapshot(tenant_id) or {})[("ip", "=2.125.160.217")] == 1


def tenant_table(server: TestServer, tenant_id: str) -> dict[tuple[str, str], int] | None:
    return write(server, lambda s: FeatureCountRepository(s, tenant_id).tenant_table(10_000))


def test_a_first_touch_is_one_statement_when_the_caller_passes_the_user(server: TestServer) -> None:
    """TrustPlane's sign-in has read the user to check the password: ``decide`` reads the user's counts
    and risk in one statement and not the user again; a user of another tenant passed along is ignored."""
    tenant_id = server.tenant().tenant_id
    user, other = make_user(server, tenant_id, "given"), make_user(server, tenant_id, "other")
    assess(server, tenant_id, user, at=T0, **HOME)
    assess(server, tenant_id, other, at=T0, **HOME)
    profiles.forget_user(tenant_id, user.id)
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)
    with_user = dataclasses.replace(attempt, user=user)
    decision, statements = statements_during(server, lambda s: service.decide(s, tenant_id, with_user))
    assert statements == 1 and decision.user is not None and decision.user.user_id == user.id
    profiles.forget_user(tenant_id, user.id)
    mismatched = dataclasses.replace(attempt, user=other)  # not the user the attempt names: read again
    decision, statements = statements_during(server, lambda s: service.decide(s, tenant_id, mismatched))
    assert statements == 2 and decision.user is not None and decision.user.user_id == user.id
