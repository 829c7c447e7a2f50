"""Risk into conditional access, in-process as the sign-in path runs it: ``assess`` → the user's context
(current user risk read from identity protection, the sign-in's risk passed in) → ``evaluate_sign_in`` →
``record_decision`` writes the outcome into the sign-in log."""

from __future__ import annotations

from typing import Any

from tests.protection.support import make_user, write
from tests.support.server import TestServer
from trustplane.access import service as access
from trustplane.access.evaluator import Decision
from trustplane.core.clock import utcnow
from trustplane.core.events import SYSTEM, Actor
from trustplane.protection import service
from trustplane.protection.service import Assessment, SignInAttempt

PARTNER = Actor("app", "partner", "Partner EDR")
APP = "00000003-0000-0ff1-ce00-000000000000"


def policy(name: str, **conditions: Any) -> dict[str, Any]:
    return {
        "displayName": name,
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            **conditions,
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


def decide(server: TestServer, tenant_id: str, user_id: str, **conditions: Any) -> Decision:
    async def run(session: Any) -> Decision:
        ctx = await access.user_sign_in_context(session, tenant_id, user_id, app_id=APP, **conditions)
        return await access.evaluate_sign_in(session, tenant_id, ctx)

    return write(server, run)


def test_a_user_confirmed_compromised_is_blocked_at_the_next_decision_until_dismissed(
    server: TestServer,
) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    write(
        server,
        lambda s: access.create_policy(
            s, tenant_id, SYSTEM, policy("Block high user risk", userRiskLevels=["high"])
        ),
    )
    assert decide(server, tenant_id, user.id).outcome == "grant"
    write(server, lambda s: service.confirm_compromised(s, tenant_id, PARTNER, [user.id]))
    assert decide(server, tenant_id, user.id).outcome == "block"
    assert (
        decide(server, tenant_id, user.id, user_risk="none").outcome == "grant"
    )  # the caller may say otherwise
    write(server, lambda s: service.dismiss(s, tenant_id, PARTNER, [user.id]))
    assert decide(server, tenant_id, user.id).outcome == "grant"


def test_the_sign_ins_own_risk_decides_and_the_decision_is_logged(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    created = write(
        server,
        lambda s: access.create_policy(
            s, tenant_id, SYSTEM, policy("Block risky sign-ins", signInRiskLevels=["medium", "high"])
        ),
    )

    async def sign_in(session: Any, ip: str) -> tuple[Assessment, Decision]:

        attempt = SignInAttempt(user_principal_name=user.user_principal_name, at=utcnow(), ip_address=ip)
        assessed = await service.assess(session, tenant_id, attempt)
        ctx = await access.user_sign_in_context(
            session, tenant_id, user.id, app_id=APP, sign_in_risk=assessed.risk_level, ip_address=ip
        )
        decision = await access.evaluate_sign_in(session, tenant_id, ctx)
        await service.record_decision(session, tenant_id, assessed.sign_in, decision)
        return assessed, decision

    home, home_decision = write(server, lambda s: sign_in(s, "81.2.69.160"))
    tor, tor_decision = write(server, lambda s: sign_in(s, "185.220.101.1"))
    assert (home.risk_level, home_decision.outcome) == ("none", "grant")
    assert (tor.risk_level, tor_decision.outcome) == ("medium", "block")
    rows = dict(
        server.rows(
            "SELECT ip_address, conditional_access_status FROM sign_ins WHERE tenant_id = :t", t=tenant_id
        )
    )
    assert rows == {"81.2.69.160": "notApplied", "185.220.101.1": "failure"}
    applied = server.scalar(
        "SELECT applied_policies FROM sign_ins WHERE tenant_id = :t AND ip_address = '185.220.101.1'",
        t=tenant_id,
    )
    assert created.id in str(applied) and "failure" in str(applied)
