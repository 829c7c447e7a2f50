from trustplane.discovery.parsers import BLOCKED, TrafficRecord
from trustplane.discovery.parsers.zscaler import ZscalerParser

from .helpers import parse_fixture


def test_csv_and_json_lines_mix_in_one_file() -> None:
    records, stats = parse_fixture(ZscalerParser(), "zscaler.log")
    assert [r.dest_host for r in records] == [
        "www.dropbox.com",
        "content.dropboxapi.com",
        "app.slack.com",
        "mega.nz",
        "files.unlisted-share.net",
    ]
    assert records[3].action == BLOCKED
    assert dict(stats.reasons) == {"bad JSON": 1}


def test_csv_quoted_numbers_and_none_values() -> None:
    line = (
        '"Mon Nov  2 09:00:01 2026","None","HTTPS","a.example.org/x","Allowed","A","B","12","34","0","0",'
        '"c","d","e","None","None","0","None","None","gw","Dept","10.0.0.1","None","GET","200","ua"'
    )
    record = ZscalerParser().parse_line(line)
    assert isinstance(record, TrafficRecord)
    assert (record.user, record.dest_ip, record.bytes_up, record.bytes_down) == (None, None, 12, 34)


def test_json_cloud_nss_event_envelope_and_numbers_as_numbers() -> None:
    record = ZscalerParser().parse_line(
        '{"sourcetype":"zscalernss-web","event":{"epochtime":1793610001,"eurl":"a.example.org/","reqsize":5,"cip":"10.0.0.1"}}'
    )
    assert isinstance(record, TrafficRecord)
    assert (record.dest_host, record.bytes_up) == ("a.example.org", 5)


def test_json_object_without_a_time_is_rejected() -> None:
    outcome = ZscalerParser().parse_line('{"a": 1}')
    assert not isinstance(outcome, TrafficRecord)
