"""The C tokeniser (``_tokens``, built from ``_tokens.pyx`` at install) and the Arrow buffers it reads and
fills. The CEF and W3C parsers use it to find their values in one pass over a batch's bytes; where it is not
built (an install without a C compiler) ``available()`` is False and they find them with polars
expressions, with the same results (tests/discovery/parsers/test_cef_frame.py, test_w3c_frame.py run both).

Buffers come from Arrow's memory pool, which keeps pages for the next batch: fresh pages from the system
cost more than the tokenising itself."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import polars as pl
import pyarrow as pa

_tokens: ModuleType | None
try:
    from trustplane.discovery.parsers import _tokens  # type: ignore[attr-defined,no-redef,unused-ignore]
except ImportError:  # pragma: no cover - an install that could not compile the extension
    _tokens = None

# TRUSTPLANE_NATIVE_TOKENS=0 turns the C tokeniser off (the polars path), for comparison and tests.
_enabled = os.environ.get("TRUSTPLANE_NATIVE_TOKENS", "1") != "0"


def built() -> bool:
    """Whether the C extension was compiled at install."""
    return _tokens is not None


def available() -> bool:
    """Whether the parsers use it: built, and not turned off."""
    return _tokens is not None and _enabled


def set_enabled(enabled: bool) -> bool:
    """Use the C tokeniser (when built) or not; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, enabled
    return previous


def tokens() -> Any:
    if _tokens is None:
        raise RuntimeError("the C tokeniser is not built")
    return _tokens


@dataclass
class LineBuffers:
    """A batch of lines as the tokeniser reads them: their bytes (``buffer``, viewed as ``data``) and
    ``n + 1`` int64 boundaries."""

    buffer: pa.Buffer
    data: memoryview
    offsets: memoryview
    count: int

    @classmethod
    def of(cls, lines: pl.Series) -> LineBuffers:
        array = lines.to_arrow()
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if array.type != pa.large_string():
            array = array.cast(pa.large_string())
        _validity, offsets, data = array.buffers()
        n = len(array)
        assert offsets is not None  # a string array always has offsets
        bounds = memoryview(offsets).cast("B").cast("q")[array.offset : array.offset + n + 1]
        if data is None:
            data = pa.py_buffer(b"")
        return cls(data, memoryview(data).cast("B"), bounds, n)


@dataclass
class Values:
    """What the tokeniser found: per wanted value a ``string_view`` column over the lines' own bytes
    (``views``, ``validity``: one row each per value) and whether it vouches for each line (``shape``)."""

    lines: LineBuffers
    views: memoryview
    validity: memoryview
    out: memoryview
    shape: memoryview
    _views: pa.Buffer
    _validity: pa.Buffer
    _out: pa.Buffer
    _shape: pa.Buffer
    used: list[int] | None = None

    @classmethod
    def allocate(cls, lines: LineBuffers, values: int) -> Values:
        """Room for ``values`` values (at least one) of ``lines`` (at least one)."""
        n = lines.count
        if values < 1 or n < 1:
            raise ValueError("the tokeniser needs a value and a line")
        bitmap = (n + 7) // 8
        views = pa.allocate_buffer(16 * n * values)
        validity = pa.allocate_buffer(bitmap * values)
        size = max(len(lines.data), 1)
        out = pa.allocate_buffer(size * values)  # reserved, not touched: a page counts once written
        shape = pa.allocate_buffer(n)
        return cls(
            lines,
            memoryview(views).cast("B").cast("B", [values, 16 * n]),
            memoryview(validity).cast("B").cast("B", [values, bitmap]),
            memoryview(out).cast("B").cast("B", [values, size]),
            memoryview(shape).cast("B"),
            views,
            validity,
            out,
            shape,
        )

    def regular(self) -> pl.Series:
        array = pa.Array.from_buffers(pa.uint8(), self.lines.count, [None, self._shape])
        return pl.Series("shape", pl.from_arrow(array)).cast(pl.Boolean)

    def columns(self, rows: Sequence[int], names: Sequence[str]) -> list[pl.Series]:
        """The values at ``rows`` as string columns named ``names`` (null where absent); no bytes copied."""
        n = self.lines.count
        bitmap = (n + 7) // 8
        if self.used is None:
            raise RuntimeError("the tokeniser has not run")
        row_size = self.out.shape[1] if self.out.shape else 0
        out = []
        for row, name in zip(rows, names, strict=True):
            array = pa.Array.from_buffers(
                pa.string_view(),
                n,
                [
                    self._validity.slice(row * bitmap, bitmap),
                    self._views.slice(row * 16 * n, 16 * n),
                    self._out.slice(row * row_size, self.used[row]),
                ],
            )
            out.append(pl.Series(name, pl.from_arrow(array)))
        return out
