import pytest

from trustplane.discovery.parsers import BLOCKED, CustomFormat, CustomFormatError, TrafficRecord, parser_for
from trustplane.discovery.parsers.custom import CustomParser

from .helpers import parse_fixture, parse_text

SEMICOLON = CustomFormat(
    kind="delimited",
    delimiter=";",
    fields={
        "time": "when",
        "user": "who",
        "source_ip": "client",
        "dest_host": "site",
        "bytes_up": "up",
        "bytes_down": "down",
        "action": "verdict",
    },
    time_format="%Y-%m-%dT%H:%M:%S",
    blocked_values=("refused",),
    required=("time", "dest_host"),
)


def test_delimited_with_header_row_maps_columns_by_case_sensitive_name() -> None:
    records, stats = parse_fixture(parser_for("CUSTOM_PARSER", SEMICOLON), "custom.log")
    assert len(records) == 5
    assert records[3].action == BLOCKED
    assert dict(stats.reasons) == {"header row": 1, "required field missing": 1}


def test_header_without_a_mapped_column_rejects_the_header_with_the_missing_names() -> None:
    _, stats = parse_text(CustomParser(SEMICOLON), "When;who;client;site;up;down;verdict\n")
    assert dict(stats.reasons) == {"header row missing columns": 1}


def test_regex_parser_with_named_groups_and_epoch_time() -> None:
    fmt = CustomFormat(
        kind="regex",
        pattern=r"^(?P<ts>\d+) (?P<ip>\S+) -> (?P<host>\S+) (?P<n>\d+)$",
        fields={"time": "ts", "source_ip": "ip", "dest_host": "host", "bytes_total": "n"},
        time_format="epoch",
    )
    records, stats = parse_text(CustomParser(fmt), "1793610001 10.0.0.1 -> A.Example.org 77\nnot matching\n")
    assert [(r.dest_host, r.bytes_total) for r in records] == [("a.example.org", 77)]
    assert dict(stats.reasons) == {"no match": 1}


def test_positional_columns_without_a_header() -> None:
    fmt = CustomFormat(
        kind="delimited", header=False, fields={"time": "0", "dest_url": "2"}, time_format="epoch_ms"
    )
    record = CustomParser(fmt).parse_line("1793610001000,x,https://a.example.org/p")
    assert isinstance(record, TrafficRecord) and record.dest_host == "a.example.org"


@pytest.mark.parametrize(
    "definition",
    [
        {"kind": "xml", "fields": {"time": "t", "dest_host": "h"}},
        {"kind": "regex", "pattern": "(", "fields": {"time": "t", "dest_host": "h"}},
        {"kind": "regex", "pattern": "(?P<t>.)", "fields": {"time": "t", "dest_host": "h"}},
        {"kind": "delimited", "fields": {"dest_host": "h"}},
        {"kind": "delimited", "fields": {"time": "t"}},
        {"kind": "delimited", "fields": {"time": "t", "dest_host": "h", "colour": "c"}},
        {"kind": "delimited", "delimiter": ";;", "fields": {"time": "t", "dest_host": "h"}},
    ],
)
def test_bad_definitions_are_refused(definition: dict[str, object]) -> None:
    with pytest.raises(CustomFormatError):
        CustomFormat.from_dict(definition)
