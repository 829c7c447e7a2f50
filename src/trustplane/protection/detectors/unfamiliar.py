"""Unfamiliar sign-in properties: the Freeman et al. score (``protection.features``) of this sign-in's
IP / ASN / country and user-agent features against the user's own history, once the learning period is
over (the score is None before)."""

from __future__ import annotations

from trustplane.protection.detectors.base import Detector, Finding, Signal, SignInSignal

# Risk score (likelihood ratio S mapped to S / (1 + S)) at which each level starts: S >= 32, 9 and 3. A
# value the user never used multiplies S by 4 per feature group, so a new address and a new browser
# together reach medium for a user of average activity.
THRESHOLDS = (("high", 0.97), ("medium", 0.9), ("low", 0.75))


def level_of(score: float) -> str:
    return next((level for level, threshold in THRESHOLDS if score >= threshold), "none")


class UnfamiliarFeatures(Detector):
    risk_event_type = "unfamiliarFeatures"
    timing = "realtime"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or signal.unfamiliar_score is None:
            return None
        level = level_of(signal.unfamiliar_score)
        if level == "none":
            return None
        return self.finding(level, riskScore=round(signal.unfamiliar_score, 4))
