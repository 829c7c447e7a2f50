"""Hypothesis fuzzing: no parser lets an exception escape, and every line is accounted for."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers import BUILT_IN, CustomFormat, LogParser, Rejection, TrafficRecord
from trustplane.discovery.parsers.custom import CustomParser

from .helpers import ALPHABET, FIXTURES, mutated_line, parse_text

FIXTURE_OF = {
    "squid": "squid.log",
    "cef": "cef.log",
    "leef": "leef.log",
    "w3c": "w3c.log",
    "zscaler": "zscaler.log",
    "paloalto": "paloalto.log",
    "fortigate": "fortigate.log",
    "cisco_asa": "cisco_asa.log",
    "custom": "custom.log",
}
CUSTOM_DELIMITED = CustomFormat(
    kind="delimited",
    delimiter=";",
    fields={"time": "when", "user": "who", "source_ip": "client", "dest_host": "site", "bytes_up": "up"},
    time_format="%Y-%m-%dT%H:%M:%S",
)
CUSTOM_REGEX = CustomFormat(
    kind="regex",
    pattern=r"(?P<t>\d+) (?P<h>\S+)",
    fields={"time": "t", "dest_host": "h"},
    time_format="epoch",
)


def _factories() -> list[tuple[str, type[LogParser] | CustomFormat]]:
    out: list[tuple[str, type[LogParser] | CustomFormat]] = [(cls.name, cls) for cls in BUILT_IN]
    out += [("custom", CUSTOM_DELIMITED), ("custom-regex", CUSTOM_REGEX)]
    return out


def _make(factory: type[LogParser] | CustomFormat) -> LogParser:
    return CustomParser(factory) if isinstance(factory, CustomFormat) else factory()


def _seed_lines(name: str) -> list[str]:
    return (Path(FIXTURES) / FIXTURE_OF.get(name.split("-")[0], "squid.log")).read_text().splitlines()


@pytest.mark.parametrize(("name", "factory"), _factories(), ids=[n for n, _ in _factories()])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parser_never_raises_and_accounts_for_every_line(
    name: str, factory: type[LogParser] | CustomFormat, data: st.DataObject
) -> None:
    seeds = _seed_lines(name)
    lines = data.draw(
        st.lists(st.one_of(mutated_line(seeds), st.text(ALPHABET, max_size=80)), min_size=1, max_size=12)
    )
    parser = _make(factory)
    for line in lines:  # directly: the stream's safety net must not be what keeps this green
        outcome = parser.parse_line(line)
        assert isinstance(outcome, TrafficRecord | Rejection)
        if isinstance(outcome, Rejection):
            assert outcome.reason
    records, stats = parse_text(_make(factory), "\n".join(lines) + "\n")
    assert stats.lines_read == len(lines)
    assert stats.parsed == len(records)
    assert "parser error" not in stats.reasons
