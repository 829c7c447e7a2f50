import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers import BLOCKED, LogParser, Rejection, TrafficRecord
from trustplane.discovery.parsers.squid import SquidNativeParser

from .helpers import FIXTURES, mutated_line, parse_fixture

pytestmark = pytest.mark.usefixtures("tokeniser")


def test_connect_line_takes_host_from_host_port_and_has_no_url() -> None:
    line = (
        "1793610002.480   1003 10.1.0.5 TCP_TUNNEL/200 300 CONNECT content.dropboxapi.com:443 -"
        " HIER_DIRECT/198.51.100.21 -"
    )
    record = SquidNativeParser().parse_line(line)
    assert isinstance(record, TrafficRecord)
    assert record.dest_host == "content.dropboxapi.com"
    assert record.dest_url is None
    assert record.dest_ip == "198.51.100.21"
    assert record.user is None
    assert record.extra["method"] == "CONNECT"


def test_padded_elapsed_field_and_denied_code_give_a_blocked_record() -> None:
    line = "1793610360.900      3 10.1.0.6 TCP_DENIED/403 0 CONNECT mega.nz:443 bob HIER_NONE/- -"
    record = SquidNativeParser().parse_line(line)
    assert isinstance(record, TrafficRecord)
    assert record.action == BLOCKED
    assert record.dest_ip is None
    assert record.user == "bob"


def test_old_squid_direct_hostname_peer_is_used_when_the_url_has_no_host() -> None:
    line = "1793610001.000 5 10.1.0.5 TCP_MISS/200 10 GET - - DIRECT/www.example.org text/html"
    record = SquidNativeParser().parse_line(line)
    assert isinstance(record, TrafficRecord)
    assert record.dest_host == "www.example.org"


def test_syslog_forwarded_line_is_parsed_after_its_prefix() -> None:
    line = (
        "<14>Nov  2 09:00:01 proxy1 squid[42]: 1793610001.120 245 10.1.0.5 TCP_MISS/200 5400"
        " GET http://a.example.org/ - HIER_DIRECT/198.51.100.20 text/html"
    )
    record = SquidNativeParser().parse_line(line)
    assert isinstance(record, TrafficRecord)
    assert record.dest_host == "a.example.org"


def test_non_numeric_timestamp_is_rejected_with_a_reason() -> None:
    line = (
        "yesterday 245 10.1.0.5 TCP_MISS/200 5400 GET http://a.example.org/ - HIER_DIRECT/1.2.3.4 text/html"
    )
    assert isinstance(SquidNativeParser().parse_line(line), Rejection)


def test_fixture_parses_five_records_and_rejects_the_junk_line() -> None:
    records, stats = parse_fixture(SquidNativeParser(), "squid.log")
    assert [r.dest_host for r in records] == [
        "www.dropbox.com",
        "content.dropboxapi.com",
        "app.slack.com",
        "mega.nz",
        "files.unlisted-share.net",
    ]
    assert stats.lines_read == 6 and stats.rejected == 1
    assert dict(stats.reasons) == {"too few fields": 1}


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    rounded = frame.with_columns(pl.col("time").dt.truncate("1ms"))
    return sorted(rounded.rows(), key=repr)


def _per_line(lines: list[str]) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    return LogParser.parse_frame(SquidNativeParser(), lines)


def test_vectorised_frame_equals_the_per_line_records_on_the_fixture() -> None:
    lines = (FIXTURES / "squid.log").read_text().splitlines()
    frame, rejections = SquidNativeParser().parse_frame(lines)
    expected_frame, expected_rejections = _per_line(lines)
    assert _rows(frame) == _rows(expected_frame)
    assert sorted(rejections, key=repr) == sorted(expected_rejections, key=repr)


SEEDS = [
    *(FIXTURES / "squid.log").read_text().splitlines(),
    "1793610001.5 1 10.0.0.1 TCP_MISS/200 12 GET http://u:p@A.Example.org.:8080/x - DIRECT/h.example.org -",
    "1793610001.5 1 - TCP_DENIED/403 x GET [2001:db8::1]:443 - HIER_NONE/- -",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(mutated_line(SEEDS), min_size=1, max_size=20))
# Found by this test: a line one field short but for a trailing blank; a peer with a second "/".
@example(
    ["1793610001.120 245 10.1.0.5 TCP_MISS/200 5400 GET https://a.example/ alice HIER_DIRECT/1/98.51.100.2 -"]
)
@example(
    ["1793610001.120 245 10.1.0.5 TCP_MISS/200 5400 GET https://a.example/ alice HIER_DIRECT/198.51.100.20 "]
)
@example(
    ["  1793610001.120 245 10.1.0.5 TCP_MISS/200 5400 GET https://a.example/ alice HIER_DIRECT/- text/html\t"]
)
def test_vectorised_frame_equals_the_per_line_records_on_fuzzed_lines(lines: list[str]) -> None:
    frame, rejections = SquidNativeParser().parse_frame(lines)
    expected_frame, expected_rejections = _per_line(lines)
    assert _rows(frame) == _rows(expected_frame)
    assert sorted(rejections, key=repr) == sorted(expected_rejections, key=repr)


URLS = [
    "https://A.Example.ORG./x",
    "http://a.example.org:8080/p?q=https://b.example.org/",
    "https://http://b.example.org/",
    "HTTPS://c.example.org/",
    "ftp://files.example.org/a",
    "wss://d.example.org",
    "https://",
    "https:///path",
    "https://e.example.org?x=1",
    "https://f.example.org#frag",
    "https://g.example.org]x",
    "h.example.org:443",
    "h.example.org",
    "://i.example.org",
    "1x://j.example.org/",
    "https://u@k.example.org/",
    "-",
]
PEERS = ["HIER_DIRECT/198.51.100.7", "HIER_DIRECT/2001:db8::1", "FIRSTUP_PARENT/proxy.example", "HIER_NONE/-",
         "A/B/1.2.3.4", "A/1.2", "/1.2.3.4", "NOSLASH", "A/..", "A/9"]  # fmt: skip
CODES = ["TCP_DENIED/403", "TCP_MISS/200", "/403", "TCP_MISS/200/DENIED", "DENIED", "TCP_DENIED_REPLY/0"]


def test_vectorised_frame_equals_the_per_line_records_for_every_url_peer_and_code_shape() -> None:
    lines = [
        f"1793610001.{n % 1000:03d} {n % 7:6d} 10.0.0.{n % 9} {code} {n} {method} {url} u{n % 3} {peer} -"
        for n, (url, peer, code, method) in enumerate(
            (u, p, c, m) for u in URLS for p in PEERS for c in CODES for m in ("GET", "CONNECT")
        )
    ]
    frame, rejections = SquidNativeParser().parse_frame(lines)
    expected_frame, expected_rejections = _per_line(lines)
    assert _rows(frame) == _rows(expected_frame)
    assert sorted(rejections, key=repr) == sorted(expected_rejections, key=repr)
    plain_frame, plain_rejections = SquidNativeParser().parse_frame(pl.Series(lines), plain=True)
    assert _rows(plain_frame) == _rows(expected_frame) and plain_rejections == rejections


STAMPS = ["1793610001", "1793610001.5", "1793610001.123456", "1793610001.1234565", "1793610001.1234575",
          "1793610001.9999996", "1793610001.0000005", "0.000001", "99999999999.999", "99999999999.9999999",
          "100000000000", "1e9", "1793610001.", ".5", "17936100O1.000", "0001793610001.25"]  # fmt: skip


def test_timestamps_read_to_the_microsecond_as_the_per_line_parser_reads_them() -> None:
    tail = "5 10.0.0.1 TCP_MISS/200 10 GET https://a.example.org/ - HIER_DIRECT/1.2.3.4 -"
    lines = [f"{stamp} {tail}" for stamp in STAMPS]
    frame, rejections = SquidNativeParser().parse_frame(lines)
    expected_frame, expected_rejections = _per_line(lines)
    assert sorted(frame.rows(), key=repr) == sorted(expected_frame.rows(), key=repr)
    assert rejections == expected_rejections
    # 1e11 and a fraction that rounds to it are too late, a letter is no number (an exponent or a bare dot
    # is a float to Python: those lines go to parse_line, which reads them)
    assert [i for i, _ in rejections] == [9, 10, 14]
