"""Shared by the parser tests: parse text through the streaming loop and check the accounting rule."""

from __future__ import annotations

import io
from pathlib import Path

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
