"""``evaluate_sign_in``, the function the sign-in path calls, against the real database: groups are read
from the directory at call time, so a membership change decides the very next sign-in, and a policy change
reaches the compiled index at the next decision (the tenant's revision moved)."""

from __future__ import annotations

from typing import Any

from tests.support.server import TestServer
from trustplane.access import service
from trustplane.access.evaluator import Decision
from trustplane.core.events import SYSTEM
from trustplane.directory import service as directory

APP = "00000003-0000-0ff1-ce00-000000000000"


def test_membership_and_policy_changes_decide_the_next_sign_in(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id

    async def write(action: Any) -> Any:
        async with server.db.session() as session:
            return await action(session)

    async def decide(user_id: str) -> Decision:
        async with server.db.session() as session:
            ctx = await service.user_sign_in_context(session, tenant_id, user_id, app_id=APP)
            return await service.evaluate_sign_in(session, tenant_id, ctx)

    user = server.run(
        write(
            lambda s: directory.create_user(
                s,
                tenant_id,
                SYSTEM,
                {
                    "user_principal_name": f"x@{tenant_id[:8]}.example.com",
                    "display_name": "X",
                    "mail_nickname": "x",
                },
                password=None,
            )
        )
    )
    outer = server.run(
        write(
            lambda s: directory.create_group(
                s,
                tenant_id,
                SYSTEM,
                {
                    "display_name": "Outer",
                    "mail_nickname": "outer",
                    "mail_enabled": False,
                    "security_enabled": True,
                },
            )
        )
    )
    inner = server.run(
        write(
            lambda s: directory.create_group(
                s,
                tenant_id,
                SYSTEM,
                {
                    "display_name": "Inner",
                    "mail_nickname": "inner",
                    "mail_enabled": False,
                    "security_enabled": True,
                },
            )
        )
    )
    server.run(write(lambda s: directory.add_member(s, tenant_id, SYSTEM, outer.id, inner.id)))
    policy = server.run(
        write(
            lambda s: service.create_policy(
                s,
                tenant_id,
                SYSTEM,
                {
                    "displayName": "Outer needs MFA",
                    "state": "enabled",
                    "conditions": {
                        "users": {"includeGroups": [outer.id]},
                        "applications": {"includeApplications": ["All"]},
                    },
                    "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
                },
            )
        )
    )

    outside = server.run(decide(user.id))
    server.run(write(lambda s: directory.add_member(s, tenant_id, SYSTEM, inner.id, user.id)))
    inside = server.run(decide(user.id))
    server.run(
        write(
            lambda s: service.update_policy(
                s, tenant_id, SYSTEM, policy.id, {"state": "enabledForReportingButNotEnforced"}
            )
        )
    )
    report_only = server.run(decide(user.id))
    server.run(write(lambda s: directory.remove_member(s, tenant_id, SYSTEM, inner.id, user.id)))
    left = server.run(decide(user.id))

    assert (outside.outcome, outside.evaluated) == ("grant", 0)
    assert (inside.outcome, inside.required_controls) == ("challenge", ("mfa",))
    assert inside.results[0].result == "failure"
    assert report_only.outcome == "grant" and report_only.results[0].result == "reportOnlyInterrupted"
    assert (left.outcome, left.evaluated) == ("grant", 0)
