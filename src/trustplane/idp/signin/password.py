"""First factor: the user's password against its argon2id hash. An unknown user or one without a password
costs the same hash as a known one, so timing does not tell which names exist."""

from __future__ import annotations

import asyncio

from argon2.exceptions import InvalidHashError, VerificationError

from trustplane.auth.secrets import PASSWORD_HASHER

# A hash of a random string made once per process: verified against when there is no real hash.
_DUMMY_HASH = PASSWORD_HASHER.hash("no such user: the same cost as a real verification")


def verify_password_sync(password_hash: str | None, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """argon2 takes tens of milliseconds by design; the event loop stays free meanwhile."""
    return await asyncio.to_thread(verify_password_sync, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """A hash made with other parameters (an older default) is replaced at the next successful sign-in."""
    try:
        return PASSWORD_HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False
