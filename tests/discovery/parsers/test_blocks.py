"""The block reader (byte blocks split into lines by polars, the columnar path a processing job runs) reads
the same lines as the per-line reader: same records, same rejects with the same line numbers and samples, and
batch end offsets a resumed run can start from."""

import io

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers import LogParser, ParseStats, parse_stream
from trustplane.discovery.parsers.base import block_lines, records_to_frame
from trustplane.discovery.parsers.cef import CefParser
from trustplane.discovery.parsers.squid import SquidNativeParser
from trustplane.discovery.parsers.w3c import W3cParser

from .helpers import FIXTURES, mutated_line

# every test here runs with the C tokeniser's line splitting and with polars' (conftest.py)
pytestmark = pytest.mark.usefixtures("tokeniser")

SEEDS = [
    *(FIXTURES / "squid.log").read_text().splitlines(),
    *(FIXTURES / "cef.log").read_text().splitlines(),
    *(FIXTURES / "w3c.log").read_text().splitlines(),
    "1793610001.5   12 10.0.0.1 TCP_MISS/200 12 GET https://a.example.org/x alice HIER_DIRECT/10.1.1.1 -",
]
LIMIT = 160  # bytes: some fixture lines are longer, so over-long lines occur
BLOCK = 200
PIECES = st.sampled_from(["", "\r", "\u00e9", "\x0b", "\t", "x" * 90, "\udcff"])


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.with_columns(pl.col("time").dt.truncate("1ms")).rows(), key=repr)


def _by_line(parser: LogParser, data: bytes) -> tuple[pl.DataFrame, ParseStats]:
    stats = ParseStats()
    records = [
        r
        for b in parse_stream(io.BytesIO(data), parser, stats, batch_lines=5, max_line_bytes=LIMIT)
        for r in b.records
    ]
    return records_to_frame(records), stats


def _by_block(
    parser: LogParser, data: bytes, stats: ParseStats, start: int = 0
) -> tuple[pl.DataFrame, list[int]]:
    batches = list(
        parse_stream(
            io.BytesIO(data),
            parser,
            stats,
            start_offset=start,
            batch_lines=5,
            columnar=True,
            block_bytes=BLOCK,
            max_line_bytes=LIMIT,
        )
    )
    frames = [records_to_frame([])] + [b.frame for b in batches if b.frame is not None]
    return pl.concat(frames, how="vertical"), [b.end_offset for b in batches]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(mutated_line(SEEDS), PIECES), min_size=1, max_size=25),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.sampled_from([SquidNativeParser, CefParser, W3cParser]),
)
def test_block_reader_reads_what_the_line_reader_reads(
    lines: list[tuple[str, str]], newline: str, last_newline: bool, kind: type[LogParser]
) -> None:
    text = newline.join(line + piece for line, piece in lines) + (newline if last_newline else "")
    data = text.encode("utf-8", "surrogateescape")
    expected, expected_stats = _by_line(kind(), data)
    stats = ParseStats()
    frame, ends = _by_block(kind(), data, stats)
    assert _rows(frame) == _rows(expected)
    assert stats.to_dict() == expected_stats.to_dict()
    assert stats.parsed + stats.rejected == stats.lines_read
    assert (ends[-1] if ends else 0) == len(data) and ends == sorted(ends)
    if len(ends) < 2:
        return
    # a run resumed at a batch boundary with the parser's state reads the rest exactly once
    middle = ends[len(ends) // 2 - 1]
    first, resumed_stats = kind(), ParseStats()
    head_frames = []
    for batch in parse_stream(
        io.BytesIO(data),
        first,
        resumed_stats,
        batch_lines=5,
        columnar=True,
        block_bytes=BLOCK,
        max_line_bytes=LIMIT,
    ):
        head_frames.append(batch.frame)
        if batch.end_offset == middle:
            break
    resumed = kind()
    resumed.restore(first.state())
    tail, _ = _by_block(resumed, data, resumed_stats, start=middle)
    assert _rows(pl.concat([*head_frames, tail], how="vertical")) == _rows(expected)
    assert resumed_stats.to_dict() == expected_stats.to_dict()


def test_an_over_long_line_across_blocks_is_one_reject_and_the_next_line_is_read() -> None:
    good = "1793610001.5 12 10.0.0.1 TCP_MISS/200 12 GET https://a.example.org/x alice HIER_DIRECT/10.1.1.1 -"
    data = ("y" * 500 + "\n" + good + "\n" + "z" * 300).encode()
    stats = ParseStats()
    frame, ends = _by_block(SquidNativeParser(), data, stats)
    assert frame["dest_host"].to_list() == ["a.example.org"]
    assert dict(stats.reasons) == {"line too long": 2} and stats.lines_read == 3
    assert ends[-1] == len(data)


def test_block_lines_take_a_line_of_exactly_the_limit_and_give_none_for_one_byte_more() -> None:
    for ends in (True, False):
        tail = b"\n" if ends else b""
        for size, fits in ((8, True), (9, False)):
            block = b"ab\n\n" + b"x" * size + tail
            split = block_lines(block, max_line_bytes=8)
            if not fits:
                assert split is None
                continue
            assert split is not None
            lines, sizes, plain = split
            assert lines.to_list() == ["ab", "", "x" * size] and plain
            assert sizes.to_list() == [3, 1, size + ends] and sum(sizes) == len(block)
