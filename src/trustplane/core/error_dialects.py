"""Which error dialect answers a request: each face registers one for its path prefix (Graph is the default,
SCIM answers under ``/scim/``, the MCAS face under ``/api/``), and the app's exception handlers ask here, so
every failure — a domain error, 401/403/404/405/413, bad input, an unexpected error — speaks the face's
language."""

from __future__ import annotations

from typing import Protocol

from fastapi import Request
from fastapi.responses import Response

from trustplane.core.errors import DomainError


class ErrorDialect(Protocol):
    def domain_error(self, request: Request, exc: DomainError) -> Response: ...

    def http_error(self, request: Request, status: int, message: str) -> Response:
        """A failure raised by the framework itself: no such route (404), method not allowed (405), …"""
        ...

    def validation_error(self, request: Request, message: str) -> Response: ...

    def unexpected_error(self, request: Request) -> Response: ...


class ErrorDialects:
    """Longest matching path prefix wins; anything else gets the default."""

    def __init__(self, default: ErrorDialect) -> None:
        self.default = default
        self._by_prefix: list[tuple[str, ErrorDialect]] = []

    def register(self, prefix: str, dialect: ErrorDialect) -> None:
        """``/scim`` matches ``/scim`` and ``/scim/…``, not ``/scimx``."""
        prefix = "/" + prefix.strip("/")
        self._by_prefix.append((prefix, dialect))
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> ErrorDialect:
        for prefix, dialect in self._by_prefix:
            if path == prefix or path.startswith(prefix + "/"):
                return dialect
        return self.default

    def for_request(self, request: Request) -> ErrorDialect:
        return self.for_path(request.scope.get("path", ""))
