from trustplane.discovery.parsers import BLOCKED, Rejection, TrafficRecord
from trustplane.discovery.parsers.cisco_asa import CiscoAsaParser

from .helpers import parse_fixture


def _parse(line: str) -> TrafficRecord:
    record = CiscoAsaParser().parse_line(line)
    assert isinstance(record, TrafficRecord), record
    return record


def test_teardown_with_identity_user_takes_that_side_as_source() -> None:
    record = _parse(
        "Nov 02 2026 09:00:01: %ASA-6-302014: Teardown TCP connection 7 for outside:198.51.100.20/443 to "
        "inside:10.1.0.5/51000(LOCAL\\Speciäl Ö01) duration 0:00:01 bytes 6600 TCP FINs"
    )
    assert (record.source_ip, record.dest_ip, record.user, record.bytes_total) == (
        "10.1.0.5",
        "198.51.100.20",
        "LOCAL\\Speciäl Ö01",
        6600,
    )


def test_built_events_are_rejected_so_a_connection_counts_once() -> None:
    outcome = CiscoAsaParser().parse_line(
        "Nov 02 2026 09:00:01: %ASA-6-302013: Built outbound TCP connection 7 for outside:198.51.100.20/443 "
        "(198.51.100.20/443) to inside:10.1.0.5/51000 (203.0.113.5/41000)"
    )
    assert isinstance(outcome, Rejection) and outcome.reason == "connection built"


def test_missing_colon_after_message_id_and_hostname_endpoint() -> None:
    record = _parse(
        "Nov 02 2026 09:00:01: %ASA-6-302016 Teardown UDP connection 9 for inside:10.1.0.6/5353 to "
        "dmz:OCSP_Server/53 duration 0:00:00 bytes 99"
    )
    assert (record.source_ip, record.dest_host, record.dest_ip) == ("10.1.0.6", "ocsp_server", None)


def test_ipv6_teardown() -> None:
    record = _parse(
        "Nov 02 2026 09:00:01: %ASA-6-302014: Teardown TCP connection 9 for outside:2001:db8::20/443 to "
        "inside:2001:db8::5/50000 duration 0:00:01 bytes 10 TCP FINs"
    )
    assert (record.source_ip, record.dest_ip) == ("2001:db8::5", "2001:db8::20")


def test_deny_is_blocked() -> None:
    record = _parse(
        "Nov 02 2026 09:06:00: %ASA-4-106023: Deny tcp src inside:10.1.0.6/51003 dst"
        ' outside:198.51.100.50/443 by access-group "in"'
    )
    assert record.action == BLOCKED and record.dest_ip == "198.51.100.50"


def test_year_less_timestamp_with_host_is_parsed() -> None:
    record = _parse(
        "<166>Nov  2 09:10:00 asa01 : %ASA-5-304001: 10.1.0.7 Accessed URL 198.51.100.40:http://x.example.org/a"
    )
    assert record.dest_host == "x.example.org"
    assert (record.time.month, record.time.day) == (11, 2)


def test_fixture_counts_every_line() -> None:
    records, stats = parse_fixture(CiscoAsaParser(), "cisco_asa.log")
    assert len(records) == 5
    assert dict(stats.reasons) == {"connection built": 1, "unsupported message id": 1}
