"""The one detector interface. A detector looks at a ``Signal`` (a sign-in with everything the service
looked up for it, or a report from an admin or partner) and returns a ``Finding`` or None. Detectors are
pure: the service loads their inputs and stores their findings, so each is tested on plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

Timing = Literal["realtime", "offline"]
Activity = Literal["signin", "user"]
LEVELS = ("none", "low", "medium", "high")
RANK = {level: i for i, level in enumerate(LEVELS)}


def highest(levels: list[str] | tuple[str, ...]) -> str:
    return max(levels, key=lambda level: RANK.get(level, 0), default="none")


@dataclass(frozen=True, slots=True)
class IpFacts:
    """What IP intelligence and the tenant's lists say about the sign-in's address."""

    country: str | None = None
    asn: int | None = None
    is_private: bool = False  # RFC 1918, loopback, link-local, CGNAT, ULA: says nothing about location
    anonymizer: str | None = None  # "tor" | "vpn" | "admin" when the address is a known anonymiser
    malicious: bool = False  # on the tenant's threat-intelligence list


@dataclass(frozen=True, slots=True)
class PreviousLocation:
    """The user's latest earlier successful sign-in that had coordinates."""

    at: datetime
    latitude: float
    longitude: float
    ip_address: str | None


@dataclass(frozen=True, slots=True)
class SprayStats:
    """Attempts from the sign-in's address in the spray window, including this one."""

    accounts: int
    attempts: int
    failed: int = 0  # attempts whose password was wrong


@dataclass(frozen=True, slots=True)
class SignInSignal:
    at: datetime
    user_id: str
    ip_address: str | None
    ip: IpFacts
    succeeded: bool
    password_valid: bool | None
    latitude: float | None = None
    longitude: float | None = None
    previous: PreviousLocation | None = None
    spray: SprayStats | None = None
    password_leaked: bool = False
    unfamiliar_score: float | None = None  # None while the user is in the learning period
    # Share of the tenant's scored sign-ins that scored as high or higher (None until calibrated).
    unfamiliar_tail: float | None = None
    # Atypical travel's own learning period is over (the earliest of 14 days or 10 sign-ins).
    travel_learned: bool = True


@dataclass(frozen=True, slots=True)
class ReportSignal:
    """An admin's or a partner's statement about a user."""

    at: datetime
    user_id: str
    kind: str  # "adminConfirmedCompromised" | "threatIntelligence"
    level: str = "high"
    reason: str | None = None
    reporter: str | None = None


Signal = SignInSignal | ReportSignal


@dataclass(frozen=True, slots=True)
class Finding:
    risk_event_type: str
    level: str
    timing: Timing
    activity: Activity
    additional_info: dict[str, Any] = field(default_factory=dict)
    source: str = "IdentityProtection"
    state: str = "atRisk"
    detail: str = "none"


class Detector:
    """One detection. ``timing`` follows Entra's marking: a real-time finding raises the sign-in's risk
    during the sign-in (``riskLevelDuringSignIn``); an offline one counts only towards the aggregated sign-in
    risk and the user's risk."""

    risk_event_type: ClassVar[str]
    timing: ClassVar[Timing]
    activity: ClassVar[Activity] = "signin"

    def detect(self, signal: Signal) -> Finding | None:
        raise NotImplementedError

    def finding(self, level: str, **info: Any) -> Finding:
        return Finding(self.risk_event_type, level, self.timing, self.activity, dict(info))
