"""Atypical travel: two successful sign-ins too far apart for the time between them. Geolocation is
imprecise (country-level data agrees with other sources for about 95% of addresses; city coordinates much
less), so each location is given an error radius that is subtracted from the distance before the speed is
computed, and short hops are ignored. Private addresses say nothing about where the user is, and
anonymiser addresses are where the anonymiser is: neither side of a pair may be one (the service keeps
them out of ``previous``). As Entra documents for atypical travel, a new user's sign-ins are first learned:
nothing fires until the earliest of 14 days after the user's first sign-in or 10 sign-ins."""

from __future__ import annotations

import math

from trustplane.protection.detectors.base import Detector, Finding, Signal, SignInSignal

EARTH_RADIUS_KM = 6371.0088
GEO_ERROR_KM = 100.0  # per location
MIN_DISTANCE_KM = 500.0  # after the error allowance
MAX_SPEED_KMH = 1000.0  # a little above a commercial jet's cruising speed
LEARNING_SIGN_INS = 10
LEARNING_DAYS = 14


def learned(sign_ins: int, days_since_first: float) -> bool:
    """The learning period ends at the earliest of ``LEARNING_DAYS`` or ``LEARNING_SIGN_INS``."""
    return sign_ins >= LEARNING_SIGN_INS or days_since_first >= LEARNING_DAYS


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class UnlikelyTravel(Detector):
    risk_event_type = "unlikelyTravel"
    timing = "offline"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or not signal.succeeded or not signal.travel_learned:
            return None
        if signal.latitude is None or signal.longitude is None or signal.previous is None:
            return None  # missing geo data: nothing to compare
        if signal.ip.is_private or signal.ip.anonymizer is not None:
            return None
        prev = signal.previous
        raw = distance_km(prev.latitude, prev.longitude, signal.latitude, signal.longitude)
        distance = raw - 2 * GEO_ERROR_KM
        if distance < MIN_DISTANCE_KM:
            return None
        hours = max((signal.at - prev.at).total_seconds() / 3600, 1 / 60)
        speed = distance / hours
        if speed <= MAX_SPEED_KMH:
            return None
        return self.finding(
            "medium",
            relatedLocation={"latitude": prev.latitude, "longitude": prev.longitude},
            relatedEventTimeInUtc=prev.at.isoformat(),
            relatedIpAddress=prev.ip_address,
            distanceKm=round(raw),
            speedKmh=round(speed),
        )
