"""Graph's error dialect, ``{"error": {"code", "message", "innerError"}}``, for every failure of the Graph
face."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from trustplane.core.clock import iso_z, utcnow
from trustplane.core.errors import (
    BadRequest,
    ClaimsChallenge,
    Conflict,
    DomainError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
)

# Domain error class -> Graph code, unless the error carries a Graph-style code of its own.
_CODES: list[tuple[type[DomainError], str]] = [
    (NotFound, "Request_ResourceNotFound"),
    (Conflict, "Request_BadRequest"),
    (Unauthenticated, "InvalidAuthenticationToken"),
    (PermissionDenied, "Authorization_RequestDenied"),
    (PayloadTooLarge, "Request_EntityTooLarge"),
    (BadRequest, "Request_BadRequest"),
]


def graph_error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    www_authenticate: str | None = None,
) -> Response:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "innerError": {
            "date": iso_z(utcnow()),
            "request-id": getattr(request.state, "request_id", ""),
            "client-request-id": request.headers.get(
                "client-request-id", getattr(request.state, "request_id", "")
            ),
        },
    }
    if details:
        error["details"] = details
    headers = {"request-id": getattr(request.state, "request_id", "")}
    if status == 401:
        headers["WWW-Authenticate"] = www_authenticate or 'Bearer realm="", error="invalid_token"'
    return Response(
        orjson.dumps({"error": error}), status_code=status, media_type="application/json", headers=headers
    )


def render_domain_error(request: Request, exc: DomainError) -> Response:
    code = next((c for cls, c in _CODES if isinstance(exc, cls)), "Request_BadRequest")
    details = None
    if exc.code == "ObjectConflict":
        target = exc.details.get("target", "") if isinstance(exc.details, dict) else ""
        details = [{"code": "ObjectConflict", "message": exc.message, "target": target}]
    elif exc.code and exc.code[0].isupper() and "_" in exc.code:
        code = exc.code  # the service already named a Graph code
    challenge = exc.www_authenticate if isinstance(exc, ClaimsChallenge) else None
    return graph_error_response(request, exc.status, code, exc.message, details, www_authenticate=challenge)


class GraphErrorDialect:
    """The Graph face's answers to every kind of failure (the default dialect of the app)."""

    def domain_error(self, request: Request, exc: DomainError) -> Response:
        return render_domain_error(request, exc)

    def http_error(self, request: Request, status: int, message: str) -> Response:
        if status == 404:
            return graph_error_response(
                request,
                404,
                "Request_ResourceNotFound",
                f"Resource not found for the segment '{request.url.path}'.",
            )
        if status == 405:
            return graph_error_response(
                request,
                405,
                "Request_BadRequest",
                f"The method {request.method} is not allowed on this resource.",
            )
        return graph_error_response(request, status, "Request_BadRequest", message)

    def validation_error(self, request: Request, message: str) -> Response:
        return graph_error_response(request, 400, "Request_BadRequest", f"Invalid request: {message}")

    def unexpected_error(self, request: Request) -> Response:
        return graph_error_response(request, 500, "InternalServerError", "An unexpected error occurred.")
