"""Shared by the parser tests: parse text through the streaming loop and check the accounting rule."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import strategies as st

from trustplane.discovery.parsers import LogParser, ParseStats, TrafficRecord, parse_stream

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def parse_text(
    parser: LogParser, text: str, *, batch_lines: int = 8192
) -> tuple[list[TrafficRecord], ParseStats]:
    stats = ParseStats()
    records: list[TrafficRecord] = []
    for batch in parse_stream(io.BytesIO(text.encode()), parser, stats, batch_lines=batch_lines):
        records.extend(batch.records)
    assert stats.parsed + stats.rejected == stats.lines_read
    return records, stats


def parse_fixture(parser: LogParser, name: str) -> tuple[list[TrafficRecord], ParseStats]:
    return parse_text(parser, (FIXTURES / name).read_text())


ALPHABET = st.characters(codec="utf-8", exclude_characters="\n\r")
PUNCT = st.sampled_from(list('|\\="\t ,:;/<>%^x0{}[]-.#'))


@st.composite
def mutated_line(draw: st.DrawFn, seeds: list[str]) -> str:
    line = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(line)))
        op = draw(st.integers(0, 3))
        if op == 0:
            line = line[:pos] + draw(st.one_of(PUNCT, st.text(ALPHABET, max_size=4))) + line[pos:]
        elif op == 1:
            line = line[:pos] + line[pos + draw(st.integers(1, 12)) :]
        elif op == 2:
            line = line[:pos]
        else:
            line = line[:pos] + draw(st.sampled_from(seeds)) + line[pos:]
    return line
