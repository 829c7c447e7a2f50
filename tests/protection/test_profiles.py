"""The per-process profile cache ``decide`` reads: a warm user's decision with known values runs no SQL
statement, a committed ``learn`` is in the cache at once (a rolled-back one is not), and a change of the
user's risk in this process reaches the next decision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event

from tests.protection.support import CHROME, T0, assess, make_user, write
from tests.support.server import TestServer
from trustplane.core.events import SYSTEM
from trustplane.protection import profiles, service
from trustplane.protection.service import SignInAttempt

HOME = {"ip_address": "81.2.69.160", "user_agent": CHROME}


def statements_during(server: TestServer, action: Any) -> tuple[Any, int]:
    """The action's result (run in its own transaction) and the SQL statements it ran."""
    seen = 0

    def count(*_args: Any) -> None:
        nonlocal seen
        seen += 1

    engine = server.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = write(server, action)
    finally:
        event.remove(engine, "before_cursor_execute", count)
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
    assert statements > 0 and cold.profile is not None
    # The same counts either way: the cache holds what the database holds.
    assert cold.profile.found == decision.profile.found  # type: ignore[union-attr]


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
