"""TOTP (RFC 6238) through pyotp: 6 digits, 30-second steps, one step of clock drift either way. A code is
accepted once: the credential remembers the last step used, so a code seen over a shoulder cannot be
replayed within its window."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

ISSUER = "TrustPlane"
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an authenticator app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def matching_step(secret: str, code: str, now: datetime, after_step: int = 0) -> int | None:
    """The time step whose code this is (within the drift), if it is later than ``after_step``."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        at = now.timestamp() + offset * totp.interval
        step = int(at // totp.interval)
        if step > after_step and hmac.compare_digest(totp.at(at), code):
            return step
    return None
