"""Each detector on plain signals: when it fires and when it must not (the false positives users report:
private addresses, missing geo data, VPN travel, short hops within geolocation error, brute force on one
account rather than a spray, the learning period)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from trustplane.protection.detectors import DETECTORS
from trustplane.protection.detectors.base import (
    IpFacts,
    PreviousLocation,
    ReportSignal,
    SignInSignal,
    SprayStats,
)
from trustplane.protection.detectors.credentials import LeakedCredentials, PasswordSpray
from trustplane.protection.detectors.network import AnonymizedIPAddress, MaliciousIPAddress
from trustplane.protection.detectors.reports import (
    AdminConfirmedUserCompromised,
    InvestigationsThreatIntelligence,
)
from trustplane.protection.detectors.travel import UnlikelyTravel, distance_km, learned
from trustplane.protection.detectors.unfamiliar import UnfamiliarFeatures

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LONDON = (51.5074, -0.1278)
SYDNEY = (-33.8688, 151.2093)
NEW_YORK = (40.7128, -74.0060)
READING = (51.4543, -0.9781)  # 60 km from London


def sign_in(**values: Any) -> SignInSignal:
    values.setdefault("at", NOW)
    values.setdefault("user_id", "u1")
    values.setdefault("ip_address", "81.2.69.160")
    values.setdefault("ip", IpFacts(country="GB"))
    values.setdefault("succeeded", True)
    values.setdefault("password_valid", True)
    return SignInSignal(**values)


def travelled(frm: tuple[float, float], to: tuple[float, float], hours: float, **values: Any) -> SignInSignal:
    previous = PreviousLocation(NOW - timedelta(hours=hours), frm[0], frm[1], "81.2.69.160")
    return sign_in(latitude=to[0], longitude=to[1], previous=previous, **values)


def test_every_detector_has_a_risk_event_type_and_entra_timing() -> None:
    assert {(d.risk_event_type, d.timing) for d in DETECTORS} == {
        ("adminConfirmedUserCompromised", "offline"),
        ("investigationsThreatIntelligence", "offline"),
        ("anonymizedIPAddress", "realtime"),
        ("maliciousIPAddress", "offline"),
        ("unlikelyTravel", "offline"),
        ("passwordSpray", "offline"),
        ("leakedCredentials", "offline"),
        ("unfamiliarFeatures", "realtime"),
    }


# ---------------------------------------------------------------- anonymised and malicious addresses


def test_anonymized_ip_fires_for_a_tor_exit() -> None:
    finding = AnonymizedIPAddress().detect(sign_in(ip=IpFacts(country="DE", anonymizer="tor")))
    assert (
        finding is not None and finding.level == "medium" and finding.additional_info == {"anonymizer": "tor"}
    )


def test_anonymized_ip_does_not_fire_for_an_ordinary_or_private_address() -> None:
    assert AnonymizedIPAddress().detect(sign_in()) is None
    assert AnonymizedIPAddress().detect(sign_in(ip_address="10.1.2.3", ip=IpFacts(is_private=True))) is None


def test_malicious_ip_fires_only_for_listed_addresses() -> None:
    finding = MaliciousIPAddress().detect(sign_in(ip=IpFacts(malicious=True)))
    assert finding is not None and finding.level == "high"
    assert MaliciousIPAddress().detect(sign_in()) is None


# ---------------------------------------------------------------- unlikely travel


def test_unlikely_travel_fires_for_london_to_sydney_in_an_hour() -> None:
    finding = UnlikelyTravel().detect(travelled(LONDON, SYDNEY, 1))
    assert finding is not None and finding.level == "medium"
    assert 16000 < finding.additional_info["distanceKm"] < 17500


def test_unlikely_travel_does_not_fire_for_a_plausible_flight() -> None:
    assert UnlikelyTravel().detect(travelled(LONDON, NEW_YORK, 9)) is None


def test_unlikely_travel_tolerates_geolocation_error_on_short_hops() -> None:
    assert 50 < distance_km(*LONDON, *READING) < 70
    assert UnlikelyTravel().detect(travelled(LONDON, READING, 0.01)) is None


def test_unlikely_travel_does_not_fire_without_geo_data() -> None:
    assert UnlikelyTravel().detect(sign_in(previous=PreviousLocation(NOW, *LONDON, None))) is None
    assert UnlikelyTravel().detect(sign_in(latitude=SYDNEY[0], longitude=SYDNEY[1])) is None


def test_unlikely_travel_ignores_vpn_and_private_addresses() -> None:
    vpn = IpFacts(country="AU", anonymizer="vpn")
    assert UnlikelyTravel().detect(travelled(LONDON, SYDNEY, 1, ip=vpn)) is None
    private = IpFacts(is_private=True)
    assert (
        UnlikelyTravel().detect(travelled(LONDON, SYDNEY, 1, ip_address="192.168.1.10", ip=private)) is None
    )


def test_unlikely_travel_is_silent_in_its_learning_period() -> None:
    assert UnlikelyTravel().detect(travelled(LONDON, SYDNEY, 1, travel_learned=False)) is None
    # Entra: the earliest of 14 days or 10 logins ends it
    assert [learned(9, 13.9), learned(10, 0.0), learned(1, 14.0)] == [False, True, True]


def test_unlikely_travel_ignores_failed_sign_ins() -> None:
    assert (
        UnlikelyTravel().detect(travelled(LONDON, SYDNEY, 1, succeeded=False, password_valid=False)) is None
    )


# ---------------------------------------------------------------- password spray and leaked credentials


def test_password_spray_fires_when_a_sprayed_password_is_valid() -> None:
    finding = PasswordSpray().detect(sign_in(spray=SprayStats(accounts=25, attempts=30, failed=29)))
    assert finding is not None and finding.level == "high" and finding.additional_info["accounts"] == 25


def test_password_spray_needs_a_valid_password() -> None:
    assert (
        PasswordSpray().detect(sign_in(spray=SprayStats(25, 30, 30), password_valid=False, succeeded=False))
        is None
    )


def test_password_spray_does_not_fire_for_few_accounts_or_brute_force_on_one() -> None:
    assert PasswordSpray().detect(sign_in(spray=SprayStats(accounts=3, attempts=3, failed=2))) is None
    assert PasswordSpray().detect(sign_in(spray=SprayStats(accounts=12, attempts=200, failed=199))) is None


def test_password_spray_does_not_fire_for_an_office_signing_in_with_right_passwords() -> None:
    assert PasswordSpray().detect(sign_in(spray=SprayStats(accounts=60, attempts=64, failed=3))) is None


def test_password_spray_ignores_the_organisations_private_nat() -> None:
    signal = sign_in(ip_address="10.0.0.1", ip=IpFacts(is_private=True), spray=SprayStats(200, 210, 200))
    assert PasswordSpray().detect(signal) is None


def test_leaked_credentials_fire_high_for_a_leaked_password_only() -> None:
    finding = LeakedCredentials().detect(sign_in(password_leaked=True))
    assert finding is not None and (finding.level, finding.activity) == ("high", "user")
    assert LeakedCredentials().detect(sign_in()) is None


# ---------------------------------------------------------------- unfamiliar features, reports


def test_unfamiliar_features_is_silent_in_the_learning_period() -> None:
    assert UnfamiliarFeatures().detect(sign_in(unfamiliar_score=None)) is None


def test_unfamiliar_features_levels_follow_the_score() -> None:
    assert UnfamiliarFeatures().detect(sign_in(unfamiliar_score=0.5)) is None
    levels = [UnfamiliarFeatures().detect(sign_in(unfamiliar_score=s)) for s in (0.8, 0.94, 0.99)]
    assert [f.level if f else None for f in levels] == ["low", "medium", "high"]


def test_unfamiliar_features_rank_in_the_tenant_raises_the_level() -> None:
    # an absolute score too low for any level, but rarer than 1 in 100 (then 1 in 1,000) of the tenant's
    ranked = [
        UnfamiliarFeatures().detect(sign_in(unfamiliar_score=0.05, unfamiliar_tail=t))
        for t in (0.008, 0.0005)
    ]
    assert [f.level if f else None for f in ranked] == ["medium", "high"]
    assert ranked[0] is not None and ranked[0].additional_info["tenantShareAtOrAbove"] == 0.008
    # common in the tenant, or no calibration yet: the absolute level alone
    assert UnfamiliarFeatures().detect(sign_in(unfamiliar_score=0.05, unfamiliar_tail=0.2)) is None
    assert UnfamiliarFeatures().detect(sign_in(unfamiliar_score=0.05, unfamiliar_tail=None)) is None
    high = UnfamiliarFeatures().detect(sign_in(unfamiliar_score=0.99, unfamiliar_tail=0.3))
    assert high is not None and high.level == "high"


def test_admin_confirmed_compromise_comes_only_from_a_report() -> None:
    report = ReportSignal(NOW, "u1", "adminConfirmedCompromised", reporter="Partner EDR")
    finding = AdminConfirmedUserCompromised().detect(report)
    assert finding is not None
    assert (finding.level, finding.state, finding.detail) == (
        "high",
        "confirmedCompromised",
        "adminConfirmedUserCompromised",
    )
    assert AdminConfirmedUserCompromised().detect(sign_in()) is None
    assert AdminConfirmedUserCompromised().detect(ReportSignal(NOW, "u1", "threatIntelligence")) is None


def test_threat_intelligence_reports_carry_the_partners_level() -> None:
    finding = InvestigationsThreatIntelligence().detect(
        ReportSignal(NOW, "u1", "threatIntelligence", level="medium", reason="suspiciousIP")
    )
    assert finding is not None and finding.level == "medium" and finding.source == "partner"
    assert InvestigationsThreatIntelligence().detect(sign_in()) is None
