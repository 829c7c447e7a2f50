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
from typing import Any, Literal

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
    """A batch of lines as the tokeniser reads them: polars' own string views and data buffers (no copy),
    and the lines' total size in bytes."""

    views: memoryview
    buffers: list[memoryview]
    count: int
    size: int
    _held: pa.Array

    @classmethod
    def of(cls, lines: pl.Series) -> LineBuffers:
        array = lines.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if array.type != pa.string_view():
            array = array.cast(pa.string_view())
        buffers = array.buffers()
        n = len(array)
        views = memoryview(buffers[1]).cast("B")[16 * array.offset : 16 * (array.offset + n)]
        data = [memoryview(b).cast("B") if b is not None else memoryview(b"") for b in buffers[2:]]
        return cls(views, data, n, int(lines.str.len_bytes().sum() or 0), array)


def split_block(block: bytes, max_line_bytes: int) -> tuple[pl.Series, pl.Series] | Literal[False] | None:
    """A block of whole lines cut by the C tokeniser: (lines as string views into the block, each line's size
    with its newline); None when a line is over ``max_line_bytes``; False when the block is not all
    printable ASCII (the caller's general path handles it)."""
    module = tokens()
    plain, newlines = module.scan(block)
    if not plain:
        return False
    n = newlines + (0 if block.endswith(b"\n") or not block else 1)
    views = pa.allocate_buffer(16 * n)
    sizes = pa.allocate_buffer(8 * n)
    longest = module.split(block, memoryview(views).cast("B"), memoryview(sizes).cast("B").cast("q"))
    if longest > max_line_bytes + 1:
        return None
    if n and not block.endswith(b"\n") and _last_size(sizes, n) > max_line_bytes:  # the file's last line
        return None
    text = pa.Array.from_buffers(pa.string_view(), n, [None, views, pa.py_buffer(block)])
    counts = pa.Array.from_buffers(pa.int64(), n, [None, sizes])
    return pl.Series("line", pl.from_arrow(text)), pl.Series("size", pl.from_arrow(counts))


def int64_column(buffer: pa.Buffer, row: int, n: int, validity: pa.Buffer | None = None) -> pl.Series:
    """Row ``row`` of an ``n``-wide int64 matrix the tokeniser filled, as a column (null where
    ``validity``, a bit a line, is 0)."""
    array = pa.Array.from_buffers(pa.int64(), n, [validity, buffer.slice(row * 8 * n, 8 * n)])
    return pl.Series(pl.from_arrow(array))


def _last_size(sizes: pa.Buffer, n: int) -> int:
    return int(memoryview(sizes).cast("B").cast("q")[n - 1])


@dataclass
class Values:
    """What the tokeniser found: per wanted value a ``string_view`` column (``views``, ``validity`` and, for
    values over 12 bytes, their copies in ``out``: one row each per value; ``used``, how much of each ``out``
    row the tokeniser filled) and whether it vouches for each line (``shape``)."""

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
        size = max(lines.size, 1)
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
        """The values at ``rows`` as string columns named ``names`` (null where absent), over the buffers the
        tokeniser filled (no further copy)."""
        n = self.lines.count
        bitmap = (n + 7) // 8
        if self.used is None:
            raise RuntimeError("the tokeniser has not run")
        row_size = max(self.lines.size, 1)  # as allocate sized each row of out
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
