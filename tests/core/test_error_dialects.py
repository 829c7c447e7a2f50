"""Which face's error dialect answers a path: the longest registered prefix, at a segment boundary."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from trustplane.core.error_dialects import ErrorDialects
from trustplane.core.errors import DomainError


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def domain_error(self, request: Request, exc: DomainError) -> Response:
        return Response(self.name)

    def http_error(self, request: Request, status: int, message: str) -> Response:
        return Response(self.name)

    def validation_error(self, request: Request, message: str) -> Response:
        return Response(self.name)

    def unexpected_error(self, request: Request) -> Response:
        return Response(self.name)


def dialects() -> ErrorDialects:
    found = ErrorDialects(Named("graph"))
    found.register("/scim", Named("scim"))
    found.register("/scim/v2/Bulk/", Named("bulk"))
    return found


def name(path: str) -> str:
    dialect = dialects().for_path(path)
    assert isinstance(dialect, Named)
    return dialect.name


def test_a_registered_prefix_and_everything_below_it_use_that_dialect() -> None:
    assert name("/scim") == "scim"
    assert name("/scim/v2/Users/42") == "scim"


def test_the_prefix_ends_at_a_segment_boundary() -> None:
    assert name("/scimx/v2") == "graph"
    assert name("/v1.0/users") == "graph"


def test_the_longest_prefix_wins() -> None:
    assert name("/scim/v2/Bulk") == "bulk"
    assert name("/scim/v2/Bulky") == "scim"
