"""Recovery codes: ten single-use codes of 80 random bits each, shown once; only their SHA-256 is kept
(80 bits are beyond guessing, so a slow hash adds nothing)."""

from __future__ import annotations

import base64
import hashlib
import secrets

COUNT = 10


def new_codes(count: int = COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(10)).decode()  # 16 characters, 80 bits
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalise(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()
