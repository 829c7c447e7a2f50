import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers import BLOCKED, LogParser, Rejection, TrafficRecord
from trustplane.discovery.parsers.cef import CefParser, parse_extension, split_header

from .helpers import FIXTURES, mutated_line, parse_fixture


def _parse(line: str) -> TrafficRecord:
    record = CefParser().parse_line(line)
    assert isinstance(record, TrafficRecord), record
    return record


def test_escaped_pipe_in_header_stays_inside_its_field() -> None:
    record = _parse(r"CEF:0|Acme|Web\|Gate|1.0|100|Req \| sent|3|rt=1793610001000 dhost=a.example.org")
    assert record.extra["product"] == "Web|Gate"
    assert record.extra["name"] == "Req | sent"
    assert record.dest_host == "a.example.org"


def test_escaped_equals_and_backslash_in_extension_values_are_unescaped() -> None:
    record = _parse(
        r"CEF:0|Acme|Gate|1.0|100|Req|3|rt=1793610001000 request=https://a.example.org/q?x\=1&y\=2 "
        r"suser=CORP\\alice dhost=a.example.org"
    )
    assert record.dest_url == "https://a.example.org/q?x=1&y=2"
    assert record.user == "CORP\\alice"


def test_extension_value_with_spaces_runs_to_the_next_key() -> None:
    fields = parse_extension(r"msg=two words here act=blocked cs1=line\nbreak")
    assert fields == {"msg": "two words here", "act": "blocked", "cs1": "line\nbreak"}


def test_trailing_empty_value_is_kept_and_trailing_spaces_trimmed() -> None:
    assert parse_extension("dst=192.0.2.1 dpt=") == {"dst": "192.0.2.1", "dpt": ""}
    assert parse_extension("src=192.0.2.9   ") == {"src": "192.0.2.9"}


def test_rfc3164_syslog_prefix_is_skipped() -> None:
    record = _parse(
        "<134>Nov  2 09:00:01 gw01 CEF:0|Acme|Gate|1.0|100|Req|3|rt=1793610001000"
        " dhost=a.example.org act=deny"
    )
    assert record.dest_host == "a.example.org"
    assert record.action == BLOCKED


def test_rfc5424_syslog_prefix_is_skipped() -> None:
    record = _parse(
        "<134>1 2026-11-02T09:00:01Z gw01 webgate - - -"
        " CEF:0|Acme|Gate|1.0|100|Req|3|rt=1793610001000 dst=198.51.100.9"
    )
    assert record.dest_ip == "198.51.100.9"


def test_header_with_fewer_than_seven_fields_is_rejected() -> None:
    assert CefParser().parse_line("CEF:0|Acme|Gate|1.0") == Rejection(
        "truncated header", "CEF needs 7 header fields"
    )


def test_split_header_counts_a_pipe_after_an_escaped_backslash_as_a_separator() -> None:
    fields, rest = split_header("a\\\\|b|rest", 2) or ([], "")
    assert fields == ["a\\", "b"]
    assert rest == "rest"


def test_human_readable_rt_is_parsed() -> None:
    record = _parse("CEF:0|Acme|Gate|1.0|100|Req|3|rt=Nov 02 2026 09:05:00 dhost=a.example.org")
    assert record.time.isoformat() == "2026-11-02T09:05:00+00:00"


def test_line_without_time_is_rejected() -> None:
    outcome = CefParser().parse_line("CEF:0|Acme|Gate|1.0|100|Req|3|dhost=a.example.org")
    assert outcome == Rejection("no timestamp")


def test_fixture_parses_five_records() -> None:
    records, stats = parse_fixture(CefParser(), "cef.log")
    assert len(records) == 5 and stats.rejected == 1
    assert (records[1].bytes_up, records[1].bytes_down) == (50000, 300)


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.with_columns(pl.col("time").dt.truncate("1ms")).rows(), key=repr)


def _same_as_per_line(lines: list[str]) -> None:
    frame, rejections = CefParser().parse_frame(lines)
    expected_frame, expected_rejections = LogParser.parse_frame(CefParser(), lines)
    assert _rows(frame) == _rows(expected_frame)
    assert sorted(rejections, key=repr) == sorted(expected_rejections, key=repr)


def test_vectorised_frame_equals_the_per_line_records_on_the_fixture() -> None:
    _same_as_per_line((FIXTURES / "cef.log").read_text().splitlines())


SEEDS = [
    *(FIXTURES / "cef.log").read_text().splitlines(),
    "CEF:0|A|B|1|2|N|3|rt=1793610001123456 src= c6a2=2001:db8::1 duser=Bob dhost=None "
    "request=x.example.org/p "
    'out= 12  in="7" outcome=Denied',
    "CEF:0|A|B|1|2|N|3|rt=1793610001 dst=198.51.100.1 suser=- act=  DROP  dhost=A.Example.ORG. msg=a=b",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(mutated_line(SEEDS), min_size=1, max_size=20))
def test_vectorised_frame_equals_the_per_line_records_on_fuzzed_lines(lines: list[str]) -> None:
    _same_as_per_line(lines)
