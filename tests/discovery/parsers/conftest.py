"""``tokeniser``: runs a module's tests once with the C tokeniser and once with the polars expressions it
stands in for (``parsers.native``). The C extension is built by the install; in CI its absence fails."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from trustplane.discovery.parsers import native


@pytest.fixture(scope="module", params=["native", "polars"])
def tokeniser(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "native" and not native.built():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the C tokeniser (discovery/parsers/_tokens.pyx) was not built by the install")
        pytest.skip("the C tokeniser is not built (no C compiler at install)")
    previous = native.set_enabled(request.param == "native")
    try:
        yield str(request.param)
    finally:
        native.set_enabled(previous)
