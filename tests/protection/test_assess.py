"""``assess`` on the real database, detector by detector where the inputs come from stored data: leaked
passwords (checked without being stored), password spray across accounts and unlikely travel between
stored sign-ins (both found by the offline-detection job the sign-in queues; travel not for VPN travel,
private addresses, missing geo data or in its learning period), and unfamiliar sign-in properties after
the learning period (and not for a new device at home)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.protection.support import CHROME, T0, assess, make_user, settled, tenant_detections, write
from tests.support.server import TestServer
from trustplane.core.events import SYSTEM
from trustplane.protection import service

FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0"
LONDON = {"latitude": 51.5074, "longitude": -0.1278}
SYDNEY = {"latitude": -33.8688, "longitude": 151.2093}


def kinds(result: service.Assessment) -> list[str]:
    return list(result.sign_in.risk_event_types)


def test_leaked_password_is_detected_without_being_stored(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    password = "Winter2025!Leaked"
    hashes = [service.password_sha1(password).lower() + ":42", "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"]
    assert write(server, lambda s: service.import_leaked_hashes(s, tenant_id, SYSTEM, hashes)) == 2
    result = assess(server, tenant_id, user, password=password)
    assert kinds(result) == ["leakedCredentials"]
    (detection,) = result.detections
    assert (detection.activity, detection.sign_in_id, detection.risk_level) == ("user", None, "high")
    assert password not in repr(result.sign_in.__dict__)
    for table in ("sign_ins", "risk_detections", "events", "audit_log"):
        rows = server.rows(f"SELECT * FROM {table} WHERE tenant_id = :t", t=tenant_id)
        assert not any(password in str(value) for row in rows for value in row), table


def test_a_password_not_on_the_list_raises_nothing(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    write(
        server, lambda s: service.import_leaked_hashes(s, tenant_id, SYSTEM, [service.password_sha1("other")])
    )
    assert kinds(assess(server, tenant_id, user, password="Correct-Horse-Battery-9")) == []


def test_leaked_hash_import_refuses_a_bad_line_and_writes_nothing(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    with pytest.raises(Exception, match="Line 2 is not a SHA-1 hash"):
        write(server, lambda s: service.import_leaked_hashes(s, tenant_id, SYSTEM, ["A" * 40, "xyz"]))
    assert server.scalar("SELECT count(*) FROM leaked_credentials WHERE tenant_id = :t", t=tenant_id) == 0


def test_password_spray_across_many_accounts_flags_the_valid_one(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"s{i}") for i in range(12)]
    sprayer = "45.83.64.10"
    for i, user in enumerate(users[:-1]):
        failed = assess(
            server,
            tenant_id,
            user,
            ip_address=sprayer,
            at=T0 + timedelta(seconds=i),
            error_code=50126,
            password_valid=False,
        )
        assert "passwordSpray" not in kinds(failed)
    hit = assess(
        server, tenant_id, users[-1], ip_address=sprayer, at=T0 + timedelta(seconds=30), password_valid=True
    )
    assert "passwordSpray" not in kinds(hit)  # offline: found by the job, not during the sign-in
    hit = settled(server, tenant_id, hit)
    assert "passwordSpray" in kinds(hit)
    assert hit.risk_level_aggregated == "high" and hit.risk_level == "none"
    assert hit.user_risk == "high"


def test_an_office_behind_one_public_address_is_not_a_spray(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"o{i}") for i in range(12)]
    for i, user in enumerate(users):
        assess(server, tenant_id, user, ip_address="45.83.64.12", at=T0 + timedelta(seconds=i))
    assert tenant_detections(server, tenant_id, "passwordSpray") == 0


def test_many_sign_ins_of_one_account_from_one_address_are_not_a_spray(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    for i in range(15):
        assess(server, tenant_id, user, ip_address="45.83.64.11", at=T0 + timedelta(minutes=i))
    assert tenant_detections(server, tenant_id, "passwordSpray") == 0


def _london(server: TestServer, tenant_id: str, user: object, sign_ins: int = 10) -> None:
    """The user's first sign-ins, at home in London, one a day (atypical travel's learning period is the
    earliest of 10 sign-ins or 14 days)."""
    for n in range(sign_ins):
        assess(server, tenant_id, user, at=T0 - timedelta(days=sign_ins - n), **LONDON)


def test_unlikely_travel_between_stored_sign_ins(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    _london(server, tenant_id, user)
    assert kinds(settled(server, tenant_id, assess(server, tenant_id, user, **LONDON))) == []
    result = assess(server, tenant_id, user, ip_address="1.128.0.10", at=T0 + timedelta(hours=1), **SYDNEY)
    assert "unlikelyTravel" not in kinds(result)  # offline: found by the job, not during the sign-in
    result = settled(server, tenant_id, result)
    assert "unlikelyTravel" in kinds(result)
    (travel,) = [d for d in result.detections if d.risk_event_type == "unlikelyTravel"]
    assert travel.additional_info["relatedIpAddress"] == "81.2.69.160"
    assert (travel.detection_timing_type, travel.risk_level) == ("offline", "medium")


def test_unlikely_travel_waits_for_its_learning_period(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    _london(server, tenant_id, user, sign_ins=3)  # three sign-ins over three days: still learning
    result = assess(server, tenant_id, user, ip_address="1.128.0.10", at=T0 + timedelta(hours=1), **SYDNEY)
    assert kinds(settled(server, tenant_id, result)) == []
    # fourteen days after the first sign-in the period is over, whatever the number of sign-ins
    later = T0 + timedelta(days=11)
    assess(server, tenant_id, user, at=later, **LONDON)
    far = assess(server, tenant_id, user, ip_address="1.128.0.10", at=later + timedelta(hours=1), **SYDNEY)
    assert kinds(settled(server, tenant_id, far)) == ["unlikelyTravel"]


def test_vpn_travel_is_not_unlikely_travel(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    _london(server, tenant_id, user)
    vpn = assess(server, tenant_id, user, ip_address="185.220.101.1", at=T0 + timedelta(hours=1), **SYDNEY)
    assert "anonymizedIPAddress" in kinds(settled(server, tenant_id, vpn))
    assert "unlikelyTravel" not in kinds(settled(server, tenant_id, vpn))
    # and the anonymiser's location is not where the user was: back home an hour later is no travel either
    home = assess(server, tenant_id, user, at=T0 + timedelta(hours=2), **LONDON)
    assert kinds(settled(server, tenant_id, home)) == []


def test_private_addresses_and_missing_geo_data_are_not_travel(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id)
    _london(server, tenant_id, user)
    private = assess(server, tenant_id, user, ip_address="10.20.30.40", at=T0 + timedelta(hours=1), **SYDNEY)
    assert "unlikelyTravel" not in kinds(settled(server, tenant_id, private))
    no_geo = assess(server, tenant_id, user, ip_address="1.128.0.10", at=T0 + timedelta(hours=1))
    assert "unlikelyTravel" not in kinds(settled(server, tenant_id, no_geo))


def _history(server: TestServer, tenant_id: str, users: list[object], days: int = 6) -> None:
    """Ten successful sign-ins per user over ``days`` days, each user from a home address of its own."""
    for n in range(10):
        for i, user in enumerate(users):
            at = T0 + timedelta(days=days * n / 9, minutes=i)
            assess(server, tenant_id, user, ip_address=f"81.2.{60 + i}.{10 + i}", at=at, user_agent=CHROME)


def test_unfamiliar_features_fire_for_a_new_address_and_browser_after_learning(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"f{i}") for i in range(5)]
    _history(server, tenant_id, users)
    later = T0 + timedelta(days=7)
    attacker = assess(server, tenant_id, users[0], ip_address="1.128.0.10", at=later, user_agent=FIREFOX_MAC)
    assert kinds(attacker) == ["unfamiliarFeatures"]
    assert attacker.risk_level in ("medium", "high") and attacker.risk_score >= 0.9


def test_a_new_device_at_home_is_not_unfamiliar(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"h{i}") for i in range(5)]
    _history(server, tenant_id, users)
    later = T0 + timedelta(days=7)
    home = assess(server, tenant_id, users[0], ip_address="81.2.60.10", at=later, user_agent=FIREFOX_MAC)
    assert kinds(home) == [] and home.risk_score < 0.75


def test_unfamiliar_features_wait_for_the_learning_period(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"l{i}") for i in range(5)]
    _history(server, tenant_id, users, days=2)  # ten sign-ins, but only two days
    later = T0 + timedelta(days=3)
    result = assess(server, tenant_id, users[0], ip_address="1.128.0.10", at=later, user_agent=FIREFOX_MAC)
    assert kinds(result) == []
