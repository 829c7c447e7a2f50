"""Unfamiliar sign-in properties: the likelihood-ratio score (``protection.features``: Freeman et al.'s IP
and user-agent groups, plus device, location and hour) of this sign-in against the user's own history, once
the learning period is over (the score is None before). The level is the higher of the score's absolute
level and its rank among the tenant's scored sign-ins (``unfamiliar_tail``)."""

from __future__ import annotations

from trustplane.protection.detectors.base import LEVELS, Detector, Finding, Signal, SignInSignal

# Risk score (likelihood ratio S mapped to S / (1 + S)) at which each level starts: S >= 32, 9 and 3. A
# value the user never used multiplies S by 4 per feature group, so a new address and a new browser
# together reach medium for a user of average activity.
THRESHOLDS = (("high", 0.97), ("medium", 0.9), ("low", 0.75))


# Share of the tenant's scored sign-ins at or above this one's score at which each level starts. No "low"
# by rank: one sign-in in twenty would put most users at low risk.
TAIL_THRESHOLDS = (("high", 0.001), ("medium", 0.01))


def level_of(score: float, tail: float | None = None) -> str:
    absolute = next((level for level, threshold in THRESHOLDS if score >= threshold), "none")
    ranked = next((level for level, share in TAIL_THRESHOLDS if tail is not None and tail <= share), "none")
    return max(absolute, ranked, key=LEVELS.index)


class UnfamiliarFeatures(Detector):
    risk_event_type = "unfamiliarFeatures"
    timing = "realtime"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or signal.unfamiliar_score is None:
            return None
        level = level_of(signal.unfamiliar_score, signal.unfamiliar_tail)
        if level == "none":
            return None
        info: dict[str, float] = {"riskScore": round(signal.unfamiliar_score, 4)}
        if signal.unfamiliar_tail is not None:
            info["tenantShareAtOrAbove"] = round(signal.unfamiliar_tail, 5)
        return self.finding(level, **info)
