"""Secrets at rest: argon2id hashes only, and random secrets with enough entropy to be tokens."""

from __future__ import annotations

import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return _HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def random_secret(nbytes: int = 32) -> str:
    return _secrets.token_urlsafe(nbytes)
