from trustplane.discovery.parsers import BLOCKED, Rejection, TrafficRecord
from trustplane.discovery.parsers.paloalto import PaloAltoParser

from .helpers import parse_fixture


def test_quoted_url_with_commas_keeps_the_following_fields_in_place() -> None:
    line = (
        "1,2026/11/02 09:00:02,0132,THREAT,url,2560,2026/11/02"
        " 09:00:02,10.1.0.5,198.51.100.21,0.0.0.0,0.0.0.0,"
        "r,corp\\alice,,ssl,vsys1,trust,untrust,e1,e2,fwd,2026/11/02"
        " 09:00:02,1,1,51001,443,0,0,0x0,tcp,block-url,"
        '"drive.example.org/a,b,c?x=1,2",(9999),online-storage,informational,client-to-server'
    )
    record = PaloAltoParser().parse_line(line)
    assert isinstance(record, TrafficRecord)
    assert record.dest_url == "drive.example.org/a,b,c?x=1,2"
    assert record.dest_host == "drive.example.org"
    assert record.action == BLOCKED


def test_syslog_prefix_glued_to_the_first_field_is_stripped() -> None:
    records, _ = parse_fixture(PaloAltoParser(), "paloalto.log")
    first = records[0]
    assert (first.source_ip, first.dest_ip, first.bytes_up, first.bytes_down, first.bytes_total) == (
        "10.1.0.5",
        "198.51.100.20",
        1200,
        5400,
        6600,
    )
    assert first.extra["app"] == "dropbox-base"


def test_deny_action_is_blocked_and_system_logs_are_rejected() -> None:
    records, stats = parse_fixture(PaloAltoParser(), "paloalto.log")
    assert [r.action for r in records].count(BLOCKED) == 1
    assert dict(stats.reasons) == {"not a traffic or threat log": 1}


def test_short_traffic_line_is_rejected_with_field_count() -> None:
    outcome = PaloAltoParser().parse_line(
        "1,2026/11/02 09:00:02,0132,TRAFFIC,end,2560,2026/11/02 09:00:02,1.2.3.4"
    )
    assert isinstance(outcome, Rejection) and outcome.reason == "too few fields"
