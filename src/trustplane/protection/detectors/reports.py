"""Detections that come from people rather than from sign-ins: an admin (or a partner's app, through
``riskyUsers/confirmCompromised``) confirming a compromise, and a partner's threat intelligence."""

from __future__ import annotations

from trustplane.protection.detectors.base import Detector, Finding, ReportSignal, Signal


class AdminConfirmedUserCompromised(Detector):
    risk_event_type = "adminConfirmedUserCompromised"
    timing = "offline"
    activity = "user"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, ReportSignal) or signal.kind != "adminConfirmedCompromised":
            return None
        return Finding(
            self.risk_event_type,
            "high",
            self.timing,
            self.activity,
            {"reporter": signal.reporter} if signal.reporter else {},
            source="IdentityProtection",
            state="confirmedCompromised",
            detail="adminConfirmedUserCompromised",
        )


class InvestigationsThreatIntelligence(Detector):
    """A partner's finding about a user (Entra: "real-time or offline"; reported here after the fact)."""

    risk_event_type = "investigationsThreatIntelligence"
    timing = "offline"
    activity = "user"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, ReportSignal) or signal.kind != "threatIntelligence":
            return None
        info = {"riskReasons": [signal.reason] if signal.reason else [], "reporter": signal.reporter}
        return Finding(self.risk_event_type, signal.level, self.timing, self.activity, info, source="partner")
