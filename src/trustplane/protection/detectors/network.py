"""Detections from the sign-in's address: a known anonymiser (Tor exit or VPN provider range shipped with
the package, or an admin-imported range) and an address on the tenant's threat-intelligence list."""

from __future__ import annotations

from trustplane.protection.detectors.base import Detector, Finding, Signal, SignInSignal


class AnonymizedIPAddress(Detector):
    risk_event_type = "anonymizedIPAddress"
    timing = "realtime"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or signal.ip.anonymizer is None:
            return None
        return self.finding("medium", anonymizer=signal.ip.anonymizer)


class MaliciousIPAddress(Detector):
    risk_event_type = "maliciousIPAddress"
    timing = "offline"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or not signal.ip.malicious:
            return None
        return self.finding("high", riskReasons=["suspiciousIP"])
