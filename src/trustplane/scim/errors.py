"""SCIM's error dialect (RFC 7644 §3.12): ``urn:ietf:params:scim:api:messages:2.0:Error`` with the status as a
string and a ``scimType`` where the RFC names one, for every failure under ``/scim/``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from trustplane.core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    Unauthenticated,
)

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPE = "application/scim+json"


class ScimError(DomainError):
    """A failure with SCIM's own ``scimType`` (invalidFilter, invalidSyntax, invalidPath, noTarget,
    invalidValue, uniqueness, mutability, tooMany, invalidVers, sensitive)."""

    def __init__(self, status: int, scim_type: str | None, message: str) -> None:
        super().__init__(message, code=scim_type or "scimError")
        self.status = status
        self.scim_type = scim_type


def invalid_filter(message: str) -> ScimError:
    return ScimError(400, "invalidFilter", message)


def invalid_syntax(message: str) -> ScimError:
    return ScimError(400, "invalidSyntax", message)


def invalid_path(message: str) -> ScimError:
    return ScimError(400, "invalidPath", message)


def invalid_value(message: str) -> ScimError:
    return ScimError(400, "invalidValue", message)


def no_target(message: str) -> ScimError:
    return ScimError(400, "noTarget", message)


def mutability(message: str) -> ScimError:
    return ScimError(400, "mutability", message)


def uniqueness(message: str) -> ScimError:
    return ScimError(409, "uniqueness", message)


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def scim_error_response(request: Request, status: int, detail: str, scim_type: str | None = None) -> Response:
    headers = {"request-id": getattr(request.state, "request_id", "")}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="SCIM"'
    return Response(
        orjson.dumps(error_body(status, detail, scim_type)),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def status_and_type(exc: DomainError) -> tuple[int, str | None]:
    """A domain error as SCIM sees it."""
    if isinstance(exc, ScimError):
        return exc.status, exc.scim_type
    if isinstance(exc, Conflict):
        # A duplicate (userName, member) is SCIM's uniqueness conflict; a broken rule (a cycle) is bad value.
        return (409, "uniqueness") if exc.code == "ObjectConflict" else (400, "invalidValue")
    if isinstance(exc, NotFound):
        return 404, None
    if isinstance(exc, (Unauthenticated, PermissionDenied, PayloadTooLarge, PreconditionFailed)):
        return exc.status, None
    if isinstance(exc, BadRequest):
        return 400, "invalidValue"
    return exc.status, None


class ScimErrorDialect:
    """Registered for ``/scim`` in app.py."""

    def domain_error(self, request: Request, exc: DomainError) -> Response:
        status, scim_type = status_and_type(exc)
        return scim_error_response(request, status, exc.message, scim_type)

    def http_error(self, request: Request, status: int, message: str) -> Response:
        if status == 404:
            message = f"No SCIM resource at '{request.url.path}'."
        elif status == 405:
            message = f"The method {request.method} is not allowed on '{request.url.path}'."
        return scim_error_response(request, status, message)

    def validation_error(self, request: Request, message: str) -> Response:
        return scim_error_response(request, 400, f"Invalid request: {message}", "invalidValue")

    def unexpected_error(self, request: Request) -> Response:
        return scim_error_response(request, 500, "An unexpected error occurred.")
