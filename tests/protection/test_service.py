"""Risk rules through the service on the real database: confirm compromised, dismiss, confirm safe,
remediate, riskState transitions with history, user-risk aggregation (low ages out, medium and high
persist), sign-in risk during the sign-in versus aggregated, and the audit of admin actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.protection.support import T0, assess, make_user, write
from tests.support.server import TestServer
from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest
from trustplane.core.events import Actor
from trustplane.protection import service
from trustplane.protection.models import RiskDetection, RiskyUser, RiskyUserHistory
from trustplane.protection.repository import RiskDetectionRepository, RiskyUserRepository

PARTNER = Actor("app", "partner-app", "Partner EDR")
TOR_EXIT = "185.220.101.1"


def risky(server: TestServer, tenant_id: str, user_id: str) -> RiskyUser | None:
    return write(server, lambda s: RiskyUserRepository(s, tenant_id).get(user_id))


def history(server: TestServer, tenant_id: str, user_id: str) -> list[RiskyUserHistory]:
    rows = server.rows(
        "SELECT risk_level, risk_state, risk_detail, initiated_by FROM risky_user_history "
        "WHERE tenant_id = :t AND user_id = :u ORDER BY risk_last_updated_at, id",
        t=tenant_id,
        u=user_id,
    )
    return rows  # type: ignore[return-value]


def detections(server: TestServer, tenant_id: str, user_id: str) -> list[RiskDetection]:
    async def all_for(s: object) -> list[RiskDetection]:
        repo = RiskDetectionRepository(s, tenant_id)  # type: ignore[arg-type]
        stmt = repo.select().where(RiskDetection.user_id == user_id)
        return list((await repo.session.execute(stmt)).scalars())

    return write(server, all_for)  # type: ignore[arg-type]


def test_confirm_compromised_makes_the_user_high_risk_with_a_detection_and_history(
    server: TestServer,
) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, PARTNER, [user.id]))
    row = risky(server, tenant_id, user.id)
    assert row is not None
    assert (row.risk_level, row.risk_state, row.risk_detail) == (
        "high",
        "confirmedCompromised",
        "adminConfirmedUserCompromised",
    )
    (found,) = detections(server, tenant_id, user.id)
    assert (found.risk_event_type, found.risk_level, found.activity, found.sign_in_id) == (
        "adminConfirmedUserCompromised",
        "high",
        "user",
        None,
    )
    assert [tuple(h) for h in history(server, tenant_id, user.id)] == [
        ("high", "confirmedCompromised", "adminConfirmedUserCompromised", "partner-app")
    ]
    assert write(server, lambda s: service.current_user_risk(s, tenant_id, user.id)) == "high"


def test_dismiss_clears_the_risk_and_dismisses_every_detection(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    assess(server, tenant_id, user, ip_address=TOR_EXIT)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, PARTNER, [user.id]))
    write(server, lambda s: service.dismiss(s, tenant_id, PARTNER, [user.id]))
    row = risky(server, tenant_id, user.id)
    assert row is not None
    assert (row.risk_level, row.risk_state, row.risk_detail) == (
        "none",
        "dismissed",
        "adminDismissedAllRiskForUser",
    )
    assert {d.risk_state for d in detections(server, tenant_id, user.id)} == {"dismissed"}
    states = [h[1] for h in history(server, tenant_id, user.id)]
    assert states == ["atRisk", "confirmedCompromised", "dismissed"]
    assert (
        server.scalar(
            "SELECT risk_state FROM sign_ins WHERE tenant_id = :t AND user_id = :u", t=tenant_id, u=user.id
        )
        == "dismissed"
    )


def test_confirm_safe_sets_level_none_and_state_confirmed_safe(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    assess(server, tenant_id, user, ip_address=TOR_EXIT)
    write(server, lambda s: service.confirm_safe(s, tenant_id, PARTNER, [user.id]))
    row = risky(server, tenant_id, user.id)
    assert row is not None
    assert (row.risk_level, row.risk_state, row.risk_detail) == (
        "none",
        "confirmedSafe",
        "adminConfirmedAccountSafe",
    )


def test_remediation_sets_state_remediated(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    assess(server, tenant_id, user, ip_address=TOR_EXIT)
    write(server, lambda s: service.remediate(s, tenant_id, PARTNER, user.id))
    row = risky(server, tenant_id, user.id)
    assert row is not None
    assert (row.risk_level, row.risk_state, row.risk_detail) == (
        "none",
        "remediated",
        "userPerformedSecuredPasswordReset",
    )


def test_a_new_detection_after_dismissal_puts_the_user_at_risk_again(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, PARTNER, [user.id]))
    write(server, lambda s: service.dismiss(s, tenant_id, PARTNER, [user.id]))
    assess(server, tenant_id, user, ip_address=TOR_EXIT)
    row = risky(server, tenant_id, user.id)
    assert row is not None
    assert (row.risk_level, row.risk_state) == ("medium", "atRisk")


def test_anonymiser_sign_in_is_medium_risk_during_the_sign_in(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    result = assess(server, tenant_id, user, ip_address=TOR_EXIT)
    assert result.risk_level == "medium" and result.risk_level_aggregated == "medium"
    assert result.sign_in.risk_event_types == ["anonymizedIPAddress"]
    assert result.user_risk == "medium"


def test_offline_detection_raises_aggregated_but_not_during_sign_in_risk(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    write(server, lambda s: service.add_threat_intel(s, tenant_id, PARTNER, "malicious", ["81.2.69.0/24"]))
    result = assess(server, tenant_id, user, ip_address="81.2.69.160")
    assert (result.risk_level, result.risk_level_aggregated) == ("none", "high")
    assert result.sign_in.risk_event_types == ["maliciousIPAddress"]


def test_low_risk_ages_out_after_180_days_while_medium_persists(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    low_user = make_user(server, tenant_id, "low")
    medium_user = make_user(server, tenant_id, "medium")
    write(
        server,
        lambda s: service.report_threat_intelligence(
            s, tenant_id, PARTNER, low_user.id, level="low", reason="suspiciousIP"
        ),
    )
    write(
        server,
        lambda s: service.report_threat_intelligence(s, tenant_id, PARTNER, medium_user.id, level="medium"),
    )
    later = T0.replace(year=2027) + timedelta(days=400)
    assert write(server, lambda s: service.current_user_risk(s, tenant_id, low_user.id, later)) == "none"
    assert write(server, lambda s: service.current_user_risk(s, tenant_id, medium_user.id, later)) == "medium"
    assert write(server, lambda s: service.age_out(s, tenant_id, later)) == 1
    row = risky(server, tenant_id, low_user.id)
    assert row is not None and row.risk_level == "none"


def test_a_sign_in_queues_the_tenants_upkeep_job_which_ages_out_old_low_risk(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    low_user, other = make_user(server, tenant_id, "low"), make_user(server, tenant_id, "other")
    write(
        server,
        lambda s: service.report_threat_intelligence(s, tenant_id, PARTNER, low_user.id, level="low"),
    )
    old = utcnow() - timedelta(days=200)
    write(
        server,
        lambda s: s.execute(
            update(RiskyUser).where(RiskyUser.id == low_user.id).values(risk_last_updated_at=old)
        ),
    )
    write(
        server,
        lambda s: s.execute(
            update(RiskDetection).where(RiskDetection.user_id == low_user.id).values(detected_at=old)
        ),
    )
    upkeep = "SELECT count(*) FROM jobs WHERE tenant_id = :t AND kind = 'protection.upkeep' AND status = :s"
    assert server.scalar(upkeep, t=tenant_id, s="done") == 0
    assess(server, tenant_id, other)  # the tenant's first sign-in in this process queues the upkeep
    server.wait_for_jobs()
    row = risky(server, tenant_id, low_user.id)
    assert row is not None and row.risk_level == "none"
    assert server.scalar(upkeep, t=tenant_id, s="done") == 1
    # within the interval a sign-in queues no other upkeep, even from a process that has not checked yet
    assert write(server, lambda s: service.schedule_upkeep(s, tenant_id, utcnow())) is False
    assess(server, tenant_id, other, at=T0 + timedelta(hours=1))
    server.wait_for_jobs()
    assert server.scalar(upkeep, t=tenant_id, s="done") == 1


def test_admin_actions_are_audited(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, PARTNER, [user.id]))
    write(server, lambda s: service.dismiss(s, tenant_id, PARTNER, [user.id]))
    server.wait_for_jobs()
    activities = {
        r[0]
        for r in server.rows(
            "SELECT activity FROM audit_log "
            "WHERE tenant_id = :t AND target_id = :u AND category = 'IdentityProtection'",
            t=tenant_id,
            u=user.id,
        )
    }
    assert activities == {"Confirm user compromised", "Dismiss user risk"}


def test_an_action_naming_an_unknown_user_writes_nothing(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    missing = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(BadRequest, match="was not found"):
        write(server, lambda s: service.confirm_compromised(s, tenant_id, PARTNER, [user.id, missing]))
    assert risky(server, tenant_id, user.id) is None
