from trustplane.discovery.parsers import BLOCKED, Rejection, TrafficRecord
from trustplane.discovery.parsers.w3c import W3cParser

from .helpers import parse_fixture, parse_text


def test_fields_directive_changing_mid_file_is_followed() -> None:
    text = (
        "#Version: 1.0\n"
        "#Fields: date time c-ip cs-host sc-bytes\n"
        "2026-11-02 09:00:01 10.0.0.1 a.example.org 100\n"
        "#Fields: date time cs-host c-ip cs-bytes sc-bytes\n"
        "2026-11-02 09:00:02 b.example.org 10.0.0.2 7 200\n"
    )
    records, stats = parse_text(W3cParser(), text)
    assert [(r.dest_host, r.source_ip, r.bytes_up, r.bytes_down) for r in records] == [
        ("a.example.org", "10.0.0.1", None, 100),
        ("b.example.org", "10.0.0.2", 7, 200),
    ]
    assert dict(stats.reasons) == {"directive": 3}


def test_fields_survive_a_batch_boundary_and_a_restore() -> None:
    parser = W3cParser()
    parser.parse_line("#Fields: date time c-ip cs-host")
    resumed = W3cParser()
    resumed.restore(parser.state())
    assert isinstance(resumed.parse_line("2026-11-02 09:00:01 10.0.0.1 a.example.org"), TrafficRecord)


def test_quoted_values_with_spaces_are_one_field() -> None:
    parser = W3cParser()
    parser.parse_line("#Fields: date time c-ip cs-categories cs-host cs(User-Agent) sc-filter-result")
    record = parser.parse_line(
        '2026-11-02 09:00:01 10.0.0.1 "Cloud Storage" a.example.org "Mozilla/5.0 (X11)" DENIED'
    )
    assert isinstance(record, TrafficRecord)
    assert record.dest_host == "a.example.org"
    assert record.action == BLOCKED


def test_data_line_before_any_fields_is_rejected() -> None:
    assert W3cParser().parse_line("2026-11-02 09:00:01 10.0.0.1") == Rejection(
        "no #Fields directive", "a data line before any #Fields line"
    )


def test_value_count_not_matching_fields_is_rejected() -> None:
    parser = W3cParser()
    parser.parse_line("#Fields: date time c-ip cs-host")
    outcome = parser.parse_line("2026-11-02 09:00:01 10.0.0.1")
    assert isinstance(outcome, Rejection) and outcome.reason == "field count mismatch"


def test_url_is_rebuilt_from_scheme_host_port_path_and_query() -> None:
    parser = W3cParser()
    parser.parse_line("#Fields: date time c-ip cs-uri-scheme cs-host cs-uri-port cs-uri-path cs-uri-query")
    record = parser.parse_line("2026-11-02 09:00:01 10.0.0.1 https a.example.org 8443 /p q=1")
    assert isinstance(record, TrafficRecord)
    assert record.dest_url == "https://a.example.org:8443/p?q=1"


def test_crlf_fixture_with_blue_coat_and_iis_sections() -> None:
    records, stats = parse_fixture(W3cParser(), "w3c.log")
    assert [r.user for r in records] == ["alice", "alice", "bob", "bob", "carol"]
    assert records[3].action == BLOCKED
    assert dict(stats.reasons) == {"directive": 4, "field count mismatch": 1}
