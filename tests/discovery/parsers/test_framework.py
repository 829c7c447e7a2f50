import io

from trustplane.discovery.parsers import SOURCES, ParseStats, is_supported, parse_stream, parser_for
from trustplane.discovery.parsers.base import MAX_LINE_BYTES, host_of, strip_syslog_prefix
from trustplane.discovery.parsers.squid import SquidNativeParser
from trustplane.discovery.parsers.w3c import W3cParser

from .helpers import FIXTURES, parse_text

SQUID = (
    "1793610001.120 245 10.1.0.5 TCP_MISS/200 5400 GET http://a.example.org/ - HIER_DIRECT/198.51.100.20 -\n"
)


def test_every_mcas_source_name_maps_to_one_parser() -> None:
    assert SOURCES["GENERIC_CEF"].name == "cef"
    assert SOURCES["SQUID_NATIVE"].name == "squid"
    assert SOURCES["PALO_ALTO_SYSLOG"].name == "paloalto"
    assert is_supported("CUSTOM_PARSER")
    assert not is_supported("NO_SUCH_SOURCE")


def test_overlong_line_is_rejected_without_losing_the_next_line() -> None:
    text = SQUID + "x" * (MAX_LINE_BYTES * 3) + "\n" + SQUID
    records, stats = parse_text(SquidNativeParser(), text)
    assert len(records) == 2
    assert dict(stats.reasons) == {"line too long": 1}
    assert stats.samples["line too long"][0]["line"] == 2


def test_last_line_without_newline_and_blank_lines_are_counted() -> None:
    records, stats = parse_text(SquidNativeParser(), SQUID + "\n\n" + SQUID.rstrip("\n"))
    assert len(records) == 2
    assert stats.lines_read == 4 and dict(stats.reasons) == {"empty line": 2}


def test_invalid_utf8_bytes_do_not_fail_the_line() -> None:
    stats = ParseStats()
    data = SQUID.replace("a.example.org", "a.ex\udcffample.org").encode("utf-8", "surrogateescape")
    records = [r for b in parse_stream(io.BytesIO(data), SquidNativeParser(), stats) for r in b.records]
    assert stats.parsed == 1 and records[0].dest_host == "a.ex\ufffdample.org"


def test_resuming_at_a_batch_offset_with_parser_state_gives_the_same_records() -> None:
    data = (FIXTURES / "w3c.log").read_bytes()
    whole_stats = ParseStats()
    whole = [
        r for b in parse_stream(io.BytesIO(data), W3cParser(), whole_stats, batch_lines=3) for r in b.records
    ]

    first = W3cParser()
    stats = ParseStats()
    batches = parse_stream(io.BytesIO(data), first, stats, batch_lines=3)
    head = next(batches)
    resumed = W3cParser()
    resumed.restore(first.state())
    tail = parse_stream(io.BytesIO(data), resumed, stats, start_offset=head.end_offset, batch_lines=3)
    rest = [r for b in tail for r in b.records]
    assert head.records + rest == whole
    assert stats.to_dict()["linesRead"] == whole_stats.lines_read
    assert stats.reasons == whole_stats.reasons


def test_syslog_prefixes_are_stripped() -> None:
    assert strip_syslog_prefix("<13>Nov  2 09:00:01 host1 payload=1") == "payload=1"
    assert strip_syslog_prefix("<13>1 2026-11-02T09:00:01Z host app 12 ID47 - payload=1") == "payload=1"
    assert strip_syslog_prefix("payload=1") == "payload=1"


def test_host_of_handles_userinfo_ports_ipv6_and_bare_hosts() -> None:
    assert host_of("https://user:pw@Files.Example.org:8443/x?y") == "files.example.org"
    assert host_of("[2001:db8::1]:443") == "2001:db8::1"
    assert host_of("example.org.") == "example.org"
    assert host_of("mega.nz:443") == "mega.nz"
    assert host_of("") is None


def test_each_builtin_parser_is_created_fresh_per_stream() -> None:
    assert parser_for("GENERIC_W3C") is not parser_for("GENERIC_W3C")
