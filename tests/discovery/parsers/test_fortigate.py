from trustplane.discovery.parsers import BLOCKED, TrafficRecord
from trustplane.discovery.parsers.fortigate import FortiGateParser, parse_pairs

from .helpers import parse_fixture


def test_repeated_key_keeps_its_first_value() -> None:
    pairs = parse_pairs('date=2026-11-02 time=09:00:01 devname="fw" date=2026-01-01 time=00:00:00')
    assert (pairs["date"], pairs["time"]) == ("2026-11-02", "09:00:01")


def test_unterminated_quote_runs_to_the_end_of_the_line() -> None:
    pairs = parse_pairs('srcip=10.0.0.1 msg="connection was reset by peer while connecting')
    assert pairs == {"srcip": "10.0.0.1", "msg": "connection was reset by peer while connecting"}


def test_unterminated_quote_line_still_parses() -> None:
    record = FortiGateParser().parse_line(
        'date=2026-11-02 time=09:06:00 srcip=10.0.0.1 hostname="mega.nz" action="blocked"'
        ' msg="denied category'
    )
    assert isinstance(record, TrafficRecord)
    assert record.action == BLOCKED


def test_quoted_values_with_spaces_and_equals_and_runs_of_spaces() -> None:
    pairs = parse_pairs('a="x = y z"    b=2  c=""')
    assert pairs == {"a": "x = y z", "b": "2", "c": ""}


def test_eventtime_in_nanoseconds_wins_over_date_and_time() -> None:
    record = FortiGateParser().parse_line(
        "date=2020-01-01 time=00:00:00 eventtime=1793610002000000000 dstip=198.51.100.1"
    )
    assert isinstance(record, TrafficRecord)
    assert record.time.isoformat() == "2026-11-02T09:00:02+00:00"


def test_tz_offset_is_applied() -> None:
    record = FortiGateParser().parse_line('date=2026-11-02 time=09:00:00 tz="-0700" dstip=198.51.100.1')
    assert isinstance(record, TrafficRecord)
    assert record.time.isoformat() == "2026-11-02T09:00:00-07:00"


def test_fixture_with_syslog_pri_prefix() -> None:
    records, stats = parse_fixture(FortiGateParser(), "fortigate.log")
    assert records[0].time.isoformat() == "2026-11-02T09:00:01+00:00"
    assert records[2].dest_url == "https://app.slack.com/client"
    assert len(records) == 5 and stats.rejected == 1
