"""The W3C columnar path (``W3cParser.parse_frame``) decides every line as ``parse_line`` does: same records,
same reject reasons at the same indexes, same ``#Fields`` state after the batch."""

import io

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers import LogParser, ParseStats, Rejection, parse_stream
from trustplane.discovery.parsers.base import ParseOutcome, records_to_frame
from trustplane.discovery.parsers.w3c import W3cParser

from .helpers import FIXTURES, mutated_line

# every test here runs with the C tokeniser and with the polars expressions (conftest.py)
pytestmark = pytest.mark.usefixtures("tokeniser")

BLUE_COAT = (
    "date time time-taken c-ip cs-username sc-filter-result cs-categories sc-status s-action cs-method"
    " cs-uri-scheme cs-host cs-uri-port cs-uri-path cs-uri-query cs(User-Agent) s-ip sc-bytes cs-bytes"
).split()
FIELD_LISTS = [
    BLUE_COAT,
    "date time c-ip cs-username cs-host cs-uri-stem sc-status sc-bytes cs-bytes s-action".split(),
    "date time c-ip cs-uri r-ip sc-filter-result cs-bytes".split(),  # the URL gives the host
    "time date cs(Host) cs-host c-ip s-supplier-ip cs-uri-port cs-uri-scheme".split(),  # host fields in order
    "date time c-ip c-ip r-ip".split(),  # a repeated name: the first one counts; no host, an IP
    "c-ip cs-host sc-bytes".split(),  # no date: every data line is rejected
]


class Counting(W3cParser):
    """Counts the lines the columnar rules leave to parse_line."""

    per_line = 0

    def parse_line(self, line: str) -> ParseOutcome:
        self.per_line += 1
        return super().parse_line(line)


def _columnar(parser: W3cParser) -> W3cParser:
    parser.min_columnar_lines = 1  # let every run of a small batch go columnar
    return parser


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.rows(), key=repr)


def _assert_same(lines: list[str], fields: list[str] | None = None) -> W3cParser:
    """parse_frame against the per-line path on the same batch, from the same state; returns the parser."""
    vectorised, per_line = _columnar(W3cParser()), W3cParser()
    if fields is not None:
        vectorised.restore({"fields": fields})
        per_line.restore({"fields": fields})
    frame, rejections = vectorised.parse_frame(lines)
    expected_frame, expected_rejections = LogParser.parse_frame(per_line, lines)
    assert frame.schema == expected_frame.schema
    assert _rows(frame) == _rows(expected_frame)
    assert rejections == expected_rejections  # in line order, as the per-line path gives them
    assert vectorised.state() == per_line.state()
    return vectorised


GOOD_DATES = st.sampled_from(["2026-11-02", "2026-11-03", "1999-12-31", '"2026-11-02"'])
GOOD_CLOCKS = st.sampled_from(["09:00:01", "23:59:59", "00:00:00.25", "09:00:01.123456789", "09:00:01."])
DATES = st.sampled_from(
    [
        "2026-11-02",
        "2026-11-02",
        "2026-02-30",
        "0000-01-01",
        "2026-1-2",
        "26-11-02",
        "-",
        "2026/11/02",
        '"2026-11-02"',
        # the calendar: leap days in leap years only, months of 30 days, no month or day 0 or 13
        "2024-02-29",
        "2000-02-29",
        "2026-02-29",
        "1900-02-29",
        "2026-04-31",
        "2026-12-31",
        "2026-13-01",
        "2026-00-10",
        "2026-11-00",
        "0001-01-01",
        "9999-12-31",
        "1969-12-31",
    ]
)
CLOCKS = st.sampled_from(
    ["09:00:01", "23:59:59", "09:00:01.5", "09:00:01.123456789", "09:00:01.", "24:00:00", "09:60:00",
     "09:00:60", "9:00:01", "09:00", "-", "09:00:01.x", "09:00:01.0000009", "00:00:00.000001", "09:00:01,5",
     "09-00-01", " 09:00:01"]
)  # fmt: skip
GOOD_VALUES = st.sampled_from(
    [
        "-", "a.example.org", "A.Example.ORG", "10.0.0.7", "alice", "5400", "443", "8080", "https", "/p/1",
        "q=1", "DENIED", "OBSERVED", "TCP_DENIED", "TCP_NC_MISS", "https://C.example.org:8080/a?b",
        "b.example.org/p",
        '"Cloud Storage"', '"Mozilla/5.0 (X11; Linux x86_64)"', '"-"', '"bob"', '" N/A "', '"6"',
    ]
)  # fmt: skip
VALUES = st.sampled_from(
    [
        "-", "a.example.org", "A.Example.ORG", "files.example.net.", "10.0.0.7", "198.51.100.4", "alice",
        "5400", "0", "12345678901234567890", "443", "80", "8443", "https", "/p/1", "q=1", "?q=2", "DENIED",
        "denied", "OBSERVED", "TCP_DENIED", "TCP_NC_MISS", "None", "N/A", "http://u:p@b.example.org/x",
        "https://[2001:db8::1]/", "https://C.example.org:8080/a?b", "b.example.org/path", "//x",
        "h\u00e9.example", '"Cloud Storage"', '"-"', '""', '"a ""quoted"" word"', "#x", "::1",
        '"Mozilla/5.0 (X11; Linux x86_64)"', '" bob "', '"A.example.org"', '"5"', 'ab"c', '"x y"z',
    ]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", " ", " ", " ", "  ", "\t", " \t"])


@st.composite
def data_line(draw: st.DrawFn, names: list[str]) -> str:
    """A line for ``names``: mostly well formed (so most go columnar); each oddity (a doubtful date or time,
    a value short or over, odd blanks between values or around the line) comes now and then, on its own."""

    def odd(one_in: int = 8) -> bool:
        return draw(st.integers(1, one_in)) == 1

    dates, clocks, spaced, edged = (
        (DATES if odd() else GOOD_DATES),
        (CLOCKS if odd() else GOOD_CLOCKS),
        odd(),
        odd(),
    )
    values = [
        draw(dates)
        if n == "date"
        else draw(clocks)
        if n == "time"
        else draw(VALUES if odd(40) else GOOD_VALUES)
        for n in names
    ]
    if odd():
        values = values[:-1] if draw(st.booleans()) else [*values, draw(VALUES)]
    text = values[0] if values else ""
    for value in values[1:]:
        text += (draw(SEPARATORS) if spaced else " ") + value
    if edged:
        text = (
            draw(st.sampled_from(["", " ", "\u00a0", "\x1c"])) + text + draw(st.sampled_from(["", " ", "\t"]))
        )
    return text


@st.composite
def directive(draw: st.DrawFn) -> str:
    return draw(
        st.sampled_from(
            [
                "#Version: 1.0",
                "#Software: SGOS 6.7",
                "  #Date: 2026-11-02 09:00:00",
                "#",
                "#Fields:",
                "\x1c#x",
            ]
        )
    )


FIXTURE = (FIXTURES / "w3c.log").read_text().splitlines()


@st.composite
def batch(draw: st.DrawFn) -> tuple[list[str], list[str] | None]:
    """Sections, each an optional #Fields line and lines for those fields, with directives, empty lines and
    mutated fixture lines between them; the parser may start with fields from an earlier batch."""
    start = draw(st.one_of(st.none(), st.sampled_from(FIELD_LISTS)))
    names = start or []
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()) or not names:
            names = draw(st.sampled_from(FIELD_LISTS))
            lines.append(
                draw(st.sampled_from(["", " "]))
                + "#Fields: "
                + draw(st.sampled_from([" ", "  "])).join(names)
            )
        for _ in range(draw(st.integers(0, 15))):
            kind = draw(st.integers(0, 19))
            if kind == 0:
                lines.append(draw(directive()))
            elif kind == 1:
                lines.append(draw(mutated_line(FIXTURE)))
            elif kind == 2:
                lines.append("")
            else:
                lines.append(draw(data_line(names)))
    return lines, start


@settings(max_examples=400, deadline=None)
@given(batch())
@example((["#Fields: date time c-ip cs-host", '2026-11-02 09:00:01 "a""b" x.example.org'], None))
def test_frame_equals_the_per_line_path_on_generated_batches(
    case: tuple[list[str], list[str] | None],
) -> None:
    lines, fields = case
    _assert_same(lines, fields)


def test_frame_equals_the_per_line_path_on_the_fixture_with_fields_changing_mid_batch() -> None:
    _assert_same(FIXTURE * 3)


def test_quoted_values_with_spaces_and_escapes_are_read_columnar() -> None:
    lines = [
        "#Fields: date time c-ip cs-username cs-categories cs-host cs(User-Agent) sc-bytes",
        '2026-11-02 09:00:01 10.0.0.1 "bob smith" "Cloud Storage" "A.Example.org" "Mozilla/5.0 (X11)" "5"',
        '2026-11-02 09:00:02 10.0.0.2 - "say ""hi""" b.example.org "-" 7',
    ]
    parser = _assert_same(lines)
    frame, rejections = parser.parse_frame(lines[1:])
    assert rejections == []
    assert frame.select("user", "dest_host", "bytes_down").rows() == [
        ("bob smith", "a.example.org", 5),
        (None, "b.example.org", 7),
    ]


def test_directives_and_data_before_any_fields_are_rejected_with_their_reasons() -> None:
    lines = [
        "2026-11-02 09:00:01 10.0.0.1 a.example.org",
        "#Version: 1.0",
        "",
        "#Fields: date time c-ip cs-host",
    ]
    frame, rejections = _columnar(W3cParser()).parse_frame(lines)
    assert frame.height == 0
    assert [(i, r.reason) for i, r in rejections] == [
        (0, "no #Fields directive"),
        (1, "directive"),
        (2, "empty line"),
        (3, "directive"),
    ]
    assert rejections[0][1] == Rejection("no #Fields directive", "a data line before any #Fields line")


def test_fields_from_one_batch_apply_to_the_next_and_survive_a_restore() -> None:
    parser = W3cParser()
    first, _ = parser.parse_frame(["#Fields: date time c-ip cs-host sc-bytes"])
    assert first.height == 0
    second, rejections = parser.parse_frame(
        [f"2026-11-02 09:00:{i % 60:02d} 10.0.0.{i} a{i}.example.org {i}" for i in range(50)]
    )
    assert rejections == [] and second.height == 50
    assert second["bytes_down"].to_list() == list(range(50))
    resumed = W3cParser()
    resumed.restore(parser.state())
    third, _ = resumed.parse_frame(["2026-11-02 09:00:01 10.0.0.1 z.example.org 9"] * 40)
    assert third["dest_host"].unique().to_list() == ["z.example.org"]


def _blue_coat_like(start: int, count: int) -> list[str]:
    return [
        f"2026-11-02 09:{i // 60 % 60:02d}:{i % 60:02d} {i} 10.0.{i % 7}.{i % 250} user{i % 9}"
        f' {"DENIED" if i % 20 == 0 else "OBSERVED"} "Cloud Storage" 200 TCP_NC_MISS GET https'
        f' h{i % 13}.example.org 443 /p/{i} - "Mozilla/5.0 (X11; Linux x86_64)" 192.0.2.1 {i * 3} {i * 2}'
        for i in range(start, start + count)
    ]


def test_a_blue_coat_batch_with_quoted_values_goes_columnar_and_matches() -> None:
    lines = ["#Fields: " + " ".join(BLUE_COAT), *_blue_coat_like(0, 500)]
    lines[200] = "#Fields: " + " ".join(FIELD_LISTS[1])  # the field list changes mid-batch ...
    lines[201] = "2026-11-02 10:00:00 10.9.9.9 carol app.slack.com /client 200 2200 800 TCP_DENIED"
    lines[300] = "#Fields: " + " ".join(BLUE_COAT)  # ... and back
    parser = _assert_same(lines)
    assert parser.fields == BLUE_COAT
    counting = Counting()
    frame, rejections = counting.parse_frame(lines)
    # only the three directives and the 98 Blue Coat lines under the short field list went line by line
    assert counting.per_line == 3 + 98
    assert [r.reason for _, r in rejections] == ["directive"] * 2 + ["field count mismatch"] * 98 + [
        "directive"
    ]
    assert frame.height == 400
    assert frame.filter(pl.col("user") == "carol")["blocked"].to_list() == [True]
    assert frame["blocked"].sum() == 1 + 20  # carol, and every 20th Blue Coat line that was not overwritten


def test_the_block_reader_with_the_columnar_path_matches_the_line_reader() -> None:
    text = "\r\n".join(
        ["#Software: SGOS", "#Fields: " + " ".join(BLUE_COAT), *_blue_coat_like(0, 3000), "bad"]
    )
    data = text.encode()
    expected_stats, columnar_stats = ParseStats(), ParseStats()
    expected = [r for b in parse_stream(io.BytesIO(data), W3cParser(), expected_stats) for r in b.records]
    frames = [
        b.frame
        for b in parse_stream(
            io.BytesIO(data), W3cParser(), columnar_stats, columnar=True, batch_lines=700, block_bytes=100_000
        )
        if b.frame is not None
    ]
    assert _rows(pl.concat(frames)) == _rows(records_to_frame(expected))
    assert columnar_stats.to_dict() == expected_stats.to_dict()
    assert columnar_stats.parsed == 3000


def test_a_failing_columnar_parse_leaves_the_fields_for_the_per_line_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """parse_stream re-reads a batch line by line when parse_frame raises: from the state the batch began
    with, so the batch's own #Fields line is not taken for the lines before it."""
    from trustplane.discovery.parsers import w3c

    def broken(*args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(w3c, "_columns", broken)
    short = [f"2026-11-02 09:00:{i:02d} 10.0.0.1 a{i}.example.org" for i in range(40)]
    # the first run is short (read line by line), the second fails in its columnar parse
    lines = [*_blue_coat_like(0, 5), "#Fields: date time c-ip cs-host", *short]
    parser = W3cParser()
    parser.restore({"fields": BLUE_COAT})
    stats = ParseStats()
    batches = list(parse_stream(io.BytesIO("\n".join(lines).encode()), parser, stats, columnar=True))
    assert sum(b.frame.height for b in batches if b.frame is not None) == 45
    assert dict(stats.reasons) == {"directive": 1}


def test_every_date_and_clock_of_the_strategies_reads_as_the_per_line_time() -> None:
    """Each date against each clock in one batch (the calendar and clock rules, deterministically)."""
    dates, clocks = DATES.elements, CLOCKS.elements
    fields = "date time c-ip cs-host sc-bytes cs-bytes sc-filter-result s-action".split()
    lines = [
        f"{date} {clock} 10.0.0.{i % 250} h{i}.example.org {i} {i * 2} {'DENIED' if i % 3 else 'ok'} x_denied"
        for i, (date, clock) in enumerate((d, c) for d in dates for c in clocks)
    ]
    parser = _assert_same(lines, fields)
    assert parser.state() == {"fields": fields}
