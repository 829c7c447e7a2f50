"""The CEF columnar path (``parse_frame``) against the per-line path (``parse_line``): the same records, to
the microsecond, and the same reject reasons, over generated batches; and the common lines stay columnar."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers.base import LogParser, ParseOutcome
from trustplane.discovery.parsers.cef import CefParser

# every test here runs with the C tokeniser and with the polars expressions (conftest.py)
pytestmark = pytest.mark.usefixtures("tokeniser")

WANTED = [
    "rt",
    "src",
    "c6a2",
    "suser",
    "duser",
    "dhost",
    "request",
    "dst",
    "c6a3",
    "out",
    "in",
    "act",
    "outcome",
]
OTHER = [
    "msg",
    "end",
    "start",
    "deviceReceiptTime",
    "cs1",
    "spt",
    "a.b",
    "x-y",
    "k[1]",
    "r",
    "t",
    "rtx",
    "Rt",
]

PREFIXES = st.sampled_from(
    [
        "",
        "<134>Nov  2 09:00:01 gw01 ",
        "<134>1 2026-11-02T09:00:01Z gw01 webgate - - - ",
        "2026-11-02T09:00:01Z gw01 ",
        "host|with|pipes ",
        "junk CEF: ",
        " ",
    ]
)


def _pieces(pieces: list[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=max_size).map("".join)


HEADER_TEXT = _pieces([*"abAB 09.=-", "\\|", "\\\\", "\\", "x=1"], 6)
VALUE = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "-",
            "None",
            "N/A",
            '""',
            "1793610001",
            "1793610001000",
            "1793610001123",
            "1793610001123456",
            "9999999999999999",
            "179361000112345678",
            "99999999999",
            "100000000000",
            "0",
            "-5",
            "1793610001.5",
            "Nov 02 2026 09:05:00",
            "Nov 02 2026 09:05:00 UTC",
            "2026-11-02T09:05:00+0100",
            "not a time",
            "10.1.0.5",
            "2001:db8::1",
            "a.example.org",
            "A.Example.ORG.",
            "a.example.org ",
            "https://a.example.org/p?q\\=1",
            "https://user@b.example.org:8443/x",
            "https://[2001:db8::1]/x",
            "http://.",
            "x.example.org/p",
            "/relative",
            " 12 ",
            '"7"',
            "1234567890123456789",
            "blocked",
            "  DROP  ",
            '"Denied"',
            "allowed",
            "tcp_denied",
            "two words",
            "a=b",
            "a\\=b",
            "CORP\\\\alice",
            "line\\nbreak",
            "x\\y",
            "café.example.org",
            "tab\there",
            "fake src=1",
            " ",
        ]
    ),
    _pieces([*"aZ0.:/= -|", "\\=", "\\\\", "\\n", "é", "\t", " k=", "1793610001"], 8),
)
EPOCH = st.one_of(
    st.integers(0, 10**16 - 1).map(str),
    st.integers(10**11, 10**16 - 1).map(str),
    st.integers(1_700_000_000_000_000, 1_800_000_000_000_000).map(str),  # microseconds: rounding matters
)
PAIR = st.one_of(
    st.tuples(st.sampled_from(WANTED + WANTED + OTHER), VALUE),
    st.tuples(st.sampled_from(["rt", "rt", "end", "start"]), EPOCH),
    st.tuples(
        st.sampled_from(["act", "outcome", "src", "c6a2", "suser", "duser", "dst", "c6a3"]),
        st.sampled_from(["", " ", "  ", "blocked", "x", "-"]),
    ),
)


@st.composite
def cef_line(draw: st.DrawFn) -> str:
    prefix = draw(PREFIXES)
    fields = draw(st.lists(HEADER_TEXT, min_size=5, max_size=7))
    pairs = draw(st.lists(PAIR, max_size=12))
    if draw(st.booleans()):  # the usual shape: a time and a destination first
        pairs = [("rt", draw(EPOCH)), ("dhost", "a.example.org"), *pairs]
    gap = draw(st.sampled_from([" ", " ", " ", "  "]))
    ext = gap.join(f"{k}={v}" for k, v in pairs)
    lead = draw(st.sampled_from(["", "", " "]))
    tail = draw(st.sampled_from(["", "", " ", "  ", " k\\=1", " x k\\=1"]))
    line = f"{prefix}CEF:0|{'|'.join(fields)}|{lead}{ext}{tail}"
    if draw(st.integers(0, 9)) == 0:  # now and then a random edit anywhere
        at = draw(st.integers(0, len(line)))
        line = (
            line[:at] + draw(st.sampled_from(["|", "\\", "=", " ", "[", "é", "\x00", "CEF:", ""])) + line[at:]
        )
    return line


LINES = st.one_of(cef_line(), st.sampled_from(["", "   ", "no header here", "CEF:0|A|B"]))


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.rows(), key=repr)


def _same_as_per_line(lines: list[str], *, plain: bool = False) -> None:
    frame, rejections = CefParser().parse_frame(lines, plain=plain)
    expected_frame, expected_rejections = LogParser.parse_frame(CefParser(), lines)
    assert _rows(frame) == _rows(expected_frame)
    assert sorted(rejections, key=repr) == sorted(expected_rejections, key=repr)


@settings(max_examples=600, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=30))
def test_frame_equals_the_per_line_records_and_reasons_on_generated_batches(lines: list[str]) -> None:
    _same_as_per_line(lines)


@settings(max_examples=300, deadline=None)
@given(st.lists(cef_line(), min_size=1, max_size=30))
def test_frame_equals_the_per_line_path_when_the_batch_is_declared_printable(lines: list[str]) -> None:
    lines = [line for line in lines if line.isascii() and line.isprintable()] or ["CEF:0|A|B|1|2|N|3|rt=1"]
    _same_as_per_line(lines, plain=True)


COMMON = [
    "<134>Nov  2 09:00:00 gw01 CEF:0|Acme|WebGate|4.2|100|Web request|3|rt=1793610000000 src=10.3.52.166"
    " suser=user419 dhost=Files.Slack.com request=https://files.slack.com/q?a\\=1&b\\=2 out=46612 in=8249"
    " act=allowed dst=198.51.80.196 msg=request seen by the gateway",
    "CEF:0|Acme|WebGate|4.2|200|Blocked request|7|msg=denied by policy cs1Label=Rule name cs1=No file sharing"
    " rt=1793610001123 dst=198.51.100.20 act=blocked request=https://mega.nz/file out=10 in=0 duser=bob",
    "CEF:0|Acme|WebGate|4.2|100|Web request|3|src=10.1.0.7 suser=carol request=https://x.example.net/a?b=c"
    " rt=1793610600 out=10 in=20 outcome=Denied",
]


def test_common_lines_stay_columnar_and_parse_as_the_per_line_path(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = [CefParser().parse_line(line) for line in COMMON]
    calls: list[str] = []

    def per_line(self: CefParser, line: str) -> ParseOutcome:
        calls.append(line)
        raise AssertionError("a common line left the columnar path")

    monkeypatch.setattr(CefParser, "parse_line", per_line)
    frame, rejections = CefParser().parse_frame(COMMON)
    assert calls == [] and rejections == []
    rows = frame.to_dicts()
    assert [r["dest_host"] for r in rows] == ["files.slack.com", "mega.nz", "x.example.net"]
    assert rows[0]["dest_url"] == "https://files.slack.com/q?a=1&b=2"
    assert [r["user"] for r in rows] == ["user419", "bob", "carol"]
    assert [r["blocked"] for r in rows] == [False, True, True]
    assert [r["time"] for r in rows] == [e.time for e in expected]  # type: ignore[union-attr]
    assert rows[1]["dest_ip"] == "198.51.100.20" and rows[1]["source_ip"] is None


def test_escaped_backslash_or_pipe_goes_through_the_per_line_path(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        "CEF:0|Acme|Web\\|Gate|1|2|N|3|rt=1793610001000 dhost=a.example.org",
        "CEF:0|Acme|Gate|1|2|N|3|rt=1793610001000 suser=CORP\\\\alice dhost=a.example.org",
    ]
    seen: list[str] = []
    original = CefParser.parse_line

    def per_line(self: CefParser, line: str) -> ParseOutcome:
        seen.append(line)
        return original(self, line)

    monkeypatch.setattr(CefParser, "parse_line", per_line)
    frame, _ = CefParser().parse_frame(lines)
    assert seen == lines
    assert frame.get_column("user").to_list()[1] == "CORP\\alice"


HEAD = "CEF:0|Acme|Gate|1|2|N|3|"


def test_epoch_time_is_the_per_line_time_to_the_microsecond() -> None:
    lines = [
        f"{HEAD}rt={rt} dhost=a.example.org" for rt in ("15642959099352", "9570785122283", "6441670508726090")
    ]
    frame, _ = CefParser().parse_frame(lines)
    expected = [CefParser().parse_line(line).time for line in lines]  # type: ignore[union-attr]
    assert frame.get_column("time").to_list() == expected


def test_blank_last_value_counts_as_empty_so_the_second_key_is_read() -> None:
    lines = [f"{HEAD}rt=1793610001000 dhost=a.example.org outcome=blocked act= "]
    frame, _ = CefParser().parse_frame(lines)
    assert frame.get_column("blocked").to_list() == [True]
    _same_as_per_line(lines)


def test_empty_first_key_reads_the_second_even_when_every_line_has_the_first() -> None:
    lines = [f"{HEAD}rt=1793610001000 dhost=a.example.org src= c6a2=2001:db8::1 suser= duser=bob"]
    frame, _ = CefParser().parse_frame(lines)
    assert frame.select("source_ip", "user").row(0) == ("2001:db8::1", "bob")
    _same_as_per_line(lines)


def test_escaped_equals_never_ends_a_value() -> None:
    lines = [f"{HEAD}rt=1793610001000 request=https://b.example.org/x k\\=1 suser=ann"]
    frame, _ = CefParser().parse_frame(lines)
    assert frame.select("dest_url", "user").row(0) == ("https://b.example.org/x k=1", "ann")
    _same_as_per_line(lines)


def test_bracketed_ipv6_url_host_is_the_per_line_host() -> None:
    lines = [
        f"{HEAD}rt=1793610001000 request=https://[2001:DB8::1]:8443/x dst=198.51.100.1",
        f"{HEAD}rt=1 request=b.example.org/",
    ]
    frame, _ = CefParser().parse_frame(lines)
    assert sorted(frame.get_column("dest_host").to_list()) == ["2001:db8::1", "b.example.org"]
    _same_as_per_line(lines)


def test_other_escapes_elsewhere_in_the_extension_stay_columnar(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"{HEAD}rt=1793610001000 msg=a\\nb \\\\ c\\=d cs1=x\\|y dhost=a.example.org suser=u\\=1"]
    expected = CefParser().parse_line(lines[0])
    monkeypatch.setattr(CefParser, "parse_line", None)
    frame, _ = CefParser().parse_frame(lines)
    assert frame.select("dest_host", "user").row(0) == ("a.example.org", "u=1")
    assert frame.select("dest_host", "user").row(0) == (expected.dest_host, expected.user)  # type: ignore[union-attr]


@st.composite
def same_layout_batch(draw: st.DrawFn) -> list[str]:
    """Lines of one source: one key order, values drawn per line (some with spaces or escapes), now and
    then a key dropped, duplicated or moved, so the layout shortcut and its fallback both run."""
    order = draw(st.lists(st.sampled_from(WANTED + OTHER), min_size=1, max_size=10))
    lines = []
    for _ in range(draw(st.integers(1, 25))):
        keys = list(order)
        edit = draw(st.integers(0, 7))
        if edit == 0 and keys:
            keys.pop(draw(st.integers(0, len(keys) - 1)))
        elif edit == 1:
            keys.insert(draw(st.integers(0, len(keys))), draw(st.sampled_from(WANTED + OTHER)))
        elif edit == 2 and len(keys) > 1:
            a, b = draw(st.integers(0, len(keys) - 1)), draw(st.integers(0, len(keys) - 1))
            keys[a], keys[b] = keys[b], keys[a]
        pairs = [("rt", draw(EPOCH))] + [(k, draw(st.one_of(VALUE, st.just("v")))) for k in keys]
        lines.append(HEAD + " ".join(f"{k}={v}" for k, v in pairs))
    return lines


@settings(max_examples=400, deadline=None)
@given(same_layout_batch())
def test_frame_equals_the_per_line_path_on_batches_sharing_a_layout(lines: list[str]) -> None:
    _same_as_per_line(lines)


def test_a_line_with_the_keys_in_another_order_than_the_first_line_reads_its_own_values() -> None:
    lines = [f"{HEAD}rt=1 src=10.0.0.1 dhost=x.example.org", f"{HEAD}rt=2 dhost=y.example.org src=10.0.0.2"]
    frame, _ = CefParser().parse_frame(lines)
    assert frame.select("source_ip", "dest_host").rows() == [
        ("10.0.0.1", "x.example.org"),
        ("10.0.0.2", "y.example.org"),
    ]
    _same_as_per_line(lines)


def test_a_value_with_spaces_in_one_line_is_read_to_the_next_key() -> None:
    lines = [f"{HEAD}rt=1 suser=ann dhost=x.example.org", f"{HEAD}rt=2 suser=Ann Lee dhost=y.example.org"]
    frame, _ = CefParser().parse_frame(lines)
    assert frame.get_column("user").to_list() == ["ann", "Ann Lee"]
    _same_as_per_line(lines)
