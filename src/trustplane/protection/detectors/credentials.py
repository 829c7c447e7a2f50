"""Detections about the password: a spray (one address, many accounts, few attempts each, mostly wrong, and
this attempt found a valid password) and a leaked password (its SHA-1 is on the admin-imported list; the
service hashes the password for the lookup and never stores it)."""

from __future__ import annotations

from trustplane.protection.detectors.base import Detector, Finding, Signal, SignInSignal

SPRAY_WINDOW_MINUTES = 60
SPRAY_MIN_ACCOUNTS = 10
SPRAY_MAX_ATTEMPTS_PER_ACCOUNT = 3.0
# A spray mostly guesses wrong; an office's shared address signs many people in with their own passwords.
SPRAY_MIN_FAILED_SHARE = 0.5


class PasswordSpray(Detector):
    risk_event_type = "passwordSpray"
    timing = "offline"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or signal.password_valid is not True or signal.spray is None:
            return None
        if signal.ip.is_private:
            return None  # a shared NAT or proxy of the organisation, not one attacker
        stats = signal.spray
        if (
            stats.accounts < SPRAY_MIN_ACCOUNTS
            or stats.attempts / stats.accounts > SPRAY_MAX_ATTEMPTS_PER_ACCOUNT
        ):
            return None
        if stats.failed < SPRAY_MIN_FAILED_SHARE * stats.attempts:
            return None
        return self.finding(
            "high", accounts=stats.accounts, attempts=stats.attempts, windowMinutes=SPRAY_WINDOW_MINUTES
        )


class LeakedCredentials(Detector):
    risk_event_type = "leakedCredentials"
    timing = "offline"
    activity = "user"

    def detect(self, signal: Signal) -> Finding | None:
        if not isinstance(signal, SignInSignal) or not signal.password_leaked:
            return None
        return self.finding("high")  # Entra: leaked credentials are always high
