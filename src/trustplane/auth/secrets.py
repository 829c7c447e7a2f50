"""Secrets at rest: argon2id hashes only, and random secrets with enough entropy to be tokens."""

from __future__ import annotations

import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Users' passwords: argon2id at OWASP's Password Storage Cheat Sheet minimum (19 MiB, 2 iterations, 1 lane),
# which keeps a sign-in's hashing near 20 ms of one core; client secrets keep the library's stronger default.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return _HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def random_secret(nbytes: int = 32) -> str:
    return _secrets.token_urlsafe(nbytes)
