"""Every detector, one class each behind ``base.Detector``."""

from trustplane.protection.detectors.base import Detector
from trustplane.protection.detectors.credentials import LeakedCredentials, PasswordSpray
from trustplane.protection.detectors.network import AnonymizedIPAddress, MaliciousIPAddress
from trustplane.protection.detectors.reports import (
    AdminConfirmedUserCompromised,
    InvestigationsThreatIntelligence,
)
from trustplane.protection.detectors.travel import UnlikelyTravel
from trustplane.protection.detectors.unfamiliar import UnfamiliarFeatures

DETECTORS: tuple[Detector, ...] = (
    AdminConfirmedUserCompromised(),
    InvestigationsThreatIntelligence(),
    AnonymizedIPAddress(),
    MaliciousIPAddress(),
    UnlikelyTravel(),
    PasswordSpray(),
    LeakedCredentials(),
    UnfamiliarFeatures(),
)

__all__ = ["DETECTORS", "Detector"]
