"""The MCAS API's error dialect, ``{"detail": "…"}`` (registered for ``/api`` in app.py)."""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.responses import Response

from trustplane.core.errors import DomainError


def mcas_error_response(request: Request, status: int, detail: str) -> Response:
    headers = {"request-id": getattr(request.state, "request_id", "")}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
    return Response(
        orjson.dumps({"detail": detail}), status_code=status, media_type="application/json", headers=headers
    )


class McasErrorDialect:
    def domain_error(self, request: Request, exc: DomainError) -> Response:
        return mcas_error_response(request, exc.status, exc.message)

    def http_error(self, request: Request, status: int, message: str) -> Response:
        if status == 404:
            message = f"No API resource at '{request.url.path}'."
        elif status == 405:
            message = f"The method {request.method} is not allowed on '{request.url.path}'."
        return mcas_error_response(request, status, message)

    def validation_error(self, request: Request, message: str) -> Response:
        return mcas_error_response(request, 400, f"Invalid request: {message}")

    def unexpected_error(self, request: Request) -> Response:
        return mcas_error_response(request, 500, "An unexpected error occurred.")
