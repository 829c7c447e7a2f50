"""Domain errors. Services raise these; each face renders them in its own dialect."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose. ``code`` is a stable machine name."""

    status = 400
    code = "badRequest"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequest(DomainError):
    status = 400
    code = "badRequest"


class NotFound(DomainError):
    status = 404
    code = "notFound"


class Conflict(DomainError):
    """The change would break a uniqueness or integrity rule (duplicate UPN, existing member, cycle)."""

    status = 400
    code = "conflict"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class PermissionDenied(DomainError):
    status = 403
    code = "forbidden"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payloadTooLarge"


class PreconditionFailed(DomainError):
    """The caller's expected version (an If-Match ETag) is no longer the object's version."""

    status = 412
    code = "preconditionFailed"


class ClaimsChallenge(Unauthenticated):
    """A token that was valid when issued but no longer is for its user (continuous access evaluation):
    the 401 carries ``WWW-Authenticate: Bearer error="insufficient_claims", claims="…"`` so a client that
    understands it fetches a new token (which needs a fresh sign-in). ``headers`` carries the challenge
    to every face: app.py adds an error's headers to whatever its face's dialect answered (Graph's JSON,
    SCIM's error schema, MCAS's detail), replacing that dialect's plain Bearer challenge."""

    def __init__(self, message: str, *, www_authenticate: str) -> None:
        super().__init__(message, code="insufficient_claims")
        self.www_authenticate = www_authenticate
        self.headers = {"WWW-Authenticate": www_authenticate}
