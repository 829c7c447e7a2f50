from trustplane.discovery.parsers import BLOCKED, Rejection, TrafficRecord
from trustplane.discovery.parsers.leef import LeefParser, java_to_strptime, parse_delimiter

from .helpers import parse_fixture


def _parse(line: str) -> TrafficRecord:
    record = LeefParser().parse_line(line)
    assert isinstance(record, TrafficRecord), record
    return record


def test_leef1_splits_attributes_on_tab_and_keeps_spaces_and_equals_in_values() -> None:
    record = _parse("LEEF:1.0|Acme|Gate|1.0|req|devTime=1793610001000\tdhost=a.example.org\tmsg=a b=c d")
    assert record.dest_host == "a.example.org"


def test_leef2_declared_caret_delimiter() -> None:
    record = _parse("LEEF:2.0|Acme|Gate|1.0|req|^|devTime=1793610001000^src=10.0.0.1^dhost=a.example.org")
    assert (record.source_ip, record.dest_host) == ("10.0.0.1", "a.example.org")


def test_leef2_hex_delimiter_with_0x_prefix() -> None:
    record = _parse(
        "LEEF:2.0|Acme|Gate|1.0|req|0x09|devTime=1793610001000\tsrc=10.0.0.2\tdhost=b.example.org"
    )
    assert record.source_ip == "10.0.0.2"


def test_leef2_hex_delimiter_with_x_prefix() -> None:
    record = _parse("LEEF:2.0|Acme|Gate|1.0|req|x7C|devTime=1793610001000|src=10.0.0.3|dhost=c.example.org")
    assert (record.source_ip, record.dest_host) == ("10.0.0.3", "c.example.org")


def test_leef2_empty_or_absent_delimiter_means_tab() -> None:
    assert (
        _parse("LEEF:2.0|Acme|Gate|1.0|req||devTime=1793610001000\tdhost=d.example.org").dest_host
        == "d.example.org"
    )
    assert (
        _parse("LEEF:2.0|Acme|Gate|1.0|req|devTime=1793610001000\tdhost=e.example.org").dest_host
        == "e.example.org"
    )


def test_parse_delimiter_accepts_one_character_or_hex_only() -> None:
    assert parse_delimiter("^") == "^"
    assert parse_delimiter("x5E") == "^"
    assert parse_delimiter("0x09") == "\t"
    assert parse_delimiter("src=1") is None
    assert parse_delimiter("0x0A") is None


def test_dev_time_format_in_java_notation_is_honoured() -> None:
    assert java_to_strptime("MMM dd yyyy HH:mm:ss") == "%b %d %Y %H:%M:%S"
    record = _parse(
        "LEEF:1.0|Acme|Gate|1.0|req|devTime=02/11/2026 09:00:02\tdevTimeFormat=dd/MM/yyyy"
        " HH:mm:ss\tdhost=a.example.org"
    )
    assert record.time.isoformat() == "2026-11-02T09:00:02+00:00"


def test_syslog_prefix_is_skipped_and_action_blocked() -> None:
    record = _parse(
        "<13>Nov  2 09:06:00 198.51.100.1"
        " LEEF:1.0|Acme|Gate|1.0|deny|devTime=1793610360000\tdhost=mega.nz\taction=blocked"
    )
    assert record.action == BLOCKED


def test_unknown_version_is_rejected() -> None:
    assert LeefParser().parse_line("LEEF:9.0|A|B|1|e|devTime=1\tdhost=x.org") == Rejection(
        "unsupported LEEF version"
    )


def test_fixture_parses_five_records() -> None:
    records, stats = parse_fixture(LeefParser(), "leef.log")
    assert [r.source_ip for r in records] == ["10.1.0.5", "10.1.0.5", "10.1.0.6", "10.1.0.6", "10.1.0.7"]
    assert stats.rejected == 1
