"""The C tokeniser (``parsers/_tokens.pyx`` through ``parsers.native``) against the Python readers it stands
in for: a CEF line's values as ``parse_extension`` reads them, a W3C line's values as ``split_values``
reads them (through the record it makes of them), and which lines it vouches for. (The parsers' frames
are compared with ``parse_line`` in test_cef_frame.py, test_w3c_frame.py and test_squid.py, with and
without it.)"""

from __future__ import annotations

import os
from array import array

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trustplane.discovery.parsers import native
from trustplane.discovery.parsers.cef import parse_extension, split_header
from trustplane.discovery.parsers.w3c import split_values

pytestmark = pytest.mark.skipif(
    not native.built() and os.environ.get("CI", "").lower() != "true",
    reason="the C tokeniser is not built (no C compiler at install)",
)

KEYS = ["rt", "src", "suser", "dhost", "request", "act", "a.b", "k[1]"]


def test_the_install_built_the_tokeniser() -> None:
    assert native.built(), "discovery/parsers/_tokens.pyx was not compiled by the install"


def cef_found(lines: list[str], keys: list[str], plain: bool = False) -> list[tuple[bool, dict[str, str]]]:
    """Per line: whether the tokeniser vouches for it, and the values it found by key."""
    found = native.Values.allocate(native.LineBuffers.of(pl.Series(lines, dtype=pl.String)), len(keys))
    found.used = native.tokens().cef_values(
        found.lines.views,
        found.lines.buffers,
        [k.encode() for k in keys],
        found.views,
        found.validity,
        found.out,
        found.shape,
        plain,
    )
    columns = found.columns(range(len(keys)), keys)
    regular = found.regular().to_list()
    return [
        (regular[r], {k: c[r] for k, c in zip(keys, columns, strict=True) if c[r] is not None})
        for r in range(len(lines))
    ]


def python_cef(line: str, keys: list[str]) -> tuple[bool, dict[str, str]]:
    """What the Python reader makes of the line: vouched for when printable ASCII with a whole header free of
    backslashes; values as ``parse_extension`` finds them, before unescaping (the tokeniser leaves that to
    the parser)."""
    at = line.find("CEF:")
    printable = all(32 <= ord(c) <= 126 for c in line)
    split = split_header(line[at + 4 :], 7) if at >= 0 else None
    if not printable or split is None:
        return False, {}
    header_end = len(line) - len(split[1])
    if "\\" in line[at:header_end]:
        return False, {}
    raw = parse_extension(split[1].replace("\\", "\x00"))  # escapes kept as they stand in the line
    return True, {k: v.replace("\x00", "\\") for k, v in raw.items() if k in keys}


EXT_PIECES = [*"ab=1 .-[]\\|", "rt=", " src=", " act=", "  "]
EXT_TEXT = st.lists(st.sampled_from(EXT_PIECES), max_size=12).map("".join)


@st.composite
def cef_lines(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["", "<134>Nov  2 09:00:00 gw01 ", "x CEF:y "]))
    fields = st.lists(st.sampled_from(["0", "Acme", "a\\|b", "", "W b"]), min_size=5, max_size=8)
    header = "|".join(draw(fields))
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from([*KEYS, "msg", "rtx", "Rt"]), EXT_TEXT),
            max_size=6,
        )
    )
    ext = " ".join(f"{k}={v}" for k, v in pairs) + draw(st.sampled_from(["", " ", "   ", " tail"]))
    return f"{prefix}CEF:{header}|{ext}"


@settings(max_examples=400, deadline=None)
@given(st.lists(cef_lines(), min_size=1, max_size=8))
@example(["CEF:0|a|b|c|d|e|f|rt=1 src=10.0.0.1  act=x   "])  # trailing blanks off the last value only
@example(["CEF:0|a|b|c|d|e|f|rt=1 rt=2 a.b=x=y k[1]= msg=two words"])  # first wins; '=' in a value
@example(["CEF:0|a|b|c|d|e|f|", "", "CEF:0|a|b|c|d|e", "no header", "CEF:0|a\\|b|c|d|e|f|g|rt=1"])
@example(["CEF:0|a|b|c|d|e|f|request=https://h/q?a\\=1 act=ok"])
def test_cef_values_are_the_python_readers(lines: list[str]) -> None:
    assert cef_found(lines, KEYS) == [python_cef(line, KEYS) for line in lines]


def test_cef_line_with_a_control_character_or_non_ascii_is_not_vouched_for() -> None:
    lines = ["CEF:0|a|b|c|d|e|f|rt=1\tsrc=x", "CEF:0|a|b|c|d|é|f|rt=1", "CEF:0|a|b|c|d|e|f|rt=1"]
    assert [ok for ok, _ in cef_found(lines, KEYS)] == [False, False, True]


STAMP = "2026-01-02 03:04:05"  # the date and time every record needs


def w3c_found(lines: list[str], count: int, rows: list[bool] | None = None) -> list[object]:
    """Per line (``STAMP`` and ``count`` values after it): None when the tokeniser does not vouch for it,
    else [source IP, destination host, URL, destination IP] as it read them — with the values at 0, 1 and 2
    as the host, the client and the destination IP fields."""
    buffers = native.LineBuffers.of(pl.Series([f"{STAMP} {line}" for line in lines], dtype=pl.String))
    n = buffers.count
    spec = array("q", [-1] * 15)
    for role, token in ((0, 0), (1, 1), (4, 2), (2, 3), (10, 4)):  # date, time, host, client, destination IP
        spec[role] = token if token < count + 2 else -1
    found = native.Values.allocate(buffers, 5)
    facts = array("q", [0] * (4 * n))
    known = bytearray(2 * ((n + 7) // 8))
    flags = bytes(1 if r else 0 for r in (rows if rows is not None else [True] * len(lines)))
    found.used = native.tokens().w3c_records(
        buffers.views,
        buffers.buffers,
        count + 2,
        memoryview(spec).cast("B").cast("q", [15, 1]),
        found.views,
        found.validity,
        found.out,
        found.shape,
        flags,
        False,
        memoryview(facts).cast("B").cast("q", [4, n]),
        memoryview(known).cast("B", [2, (n + 7) // 8]),
    )
    ip, host, url, destination = found.columns([0, 2, 3, 4], ["ip", "host", "url", "destination"])
    regular = found.regular().to_list()
    return [[ip[r], host[r], url[r], destination[r]] if regular[r] else None for r in range(len(lines))]


def python_w3c(line: str, count: int) -> object:
    """What ``w3c_found`` should read, by the columnar W3C rules: printable ASCII, not a directive, single
    spaces between values, every quote opening or closing a whole value; a destination (the host or the
    destination IP present: not empty nor ``-``)."""
    line = f"{STAMP} {line}"
    if not all(32 <= ord(c) <= 126 for c in line) or line[-1] == " ":
        return None
    tokens, rest = [], line
    while True:
        if rest.startswith('"'):
            close = rest.find('"', 1)
            if close < 0 or (close + 1 < len(rest) and rest[close + 1] != " "):
                return None
            tokens.append(rest[1:close])
            rest = rest[close + 1 :]
        else:
            cut = rest.find(" ")
            token = rest if cut < 0 else rest[:cut]
            if '"' in token:
                return None
            tokens.append(token)
            rest = rest[len(token) :]
        if not rest:
            break
        if not rest.startswith(" ") or rest.startswith("  ") or rest == " ":
            return None
        rest = rest[1:]
    if len(tokens) != count + 2:
        return None
    assert tokens == split_values(line)  # what parse_line reads from the same line

    def present(k: int) -> str | None:
        return tokens[k] if k < len(tokens) and tokens[k] not in ("", "-") else None

    host, ip, destination = present(2), present(3), present(4)
    if host is None and destination is None:
        return None
    return [ip, host and host.lower(), host and f"http://{host}/", destination]


W3C_TOKEN = st.one_of(
    st.text(alphabet=st.sampled_from([*"ab-9:.#/"]), min_size=1, max_size=6),
    st.text(alphabet=st.sampled_from([*"ab -x"]), max_size=6).map(lambda t: f'"{t}"'),
    st.sampled_from(['a"b', '"', '"a"b', "é", "a\tb"]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(W3C_TOKEN, min_size=1, max_size=5), st.sampled_from([" ", "  ", ""])),
        min_size=1,
        max_size=8,
    )
)
@example([(['"a b"', "c"], " ")])
def test_w3c_values_are_the_python_readers(drawn: list[tuple[list[str], str]]) -> None:
    lines = [sep.join(tokens) if sep else " ".join(tokens) + " " for tokens, sep in drawn]
    for count in (2, 3):
        assert w3c_found(lines, count) == [python_w3c(line, count) for line in lines]


def test_w3c_lines_not_asked_for_are_left_alone() -> None:
    lines = ["a.example b", "c.example d", "#Fields: x y"]
    assert w3c_found(lines, 2, rows=[True, False, True]) == [
        ["b", "a.example", "http://a.example/", None],
        None,
        None,
    ]


def test_long_values_are_copied_and_short_ones_inline() -> None:
    long = "x" * 40
    lines = [f"CEF:0|a|b|c|d|e|f|rt=1 request={long} act=" + "y" * 12, f"CEF:0|a|b|c|d|e|f|request={long}2"]
    found = cef_found(lines, ["rt", "request", "act"])
    assert found == [
        (True, {"rt": "1", "request": long, "act": "y" * 12}),
        (True, {"request": long + "2"}),
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from([*'ab #="']), max_size=20), max_size=12), st.booleans())
@example(["", "", "x" * 13], True)
@example([], False)
def test_split_block_cuts_the_lines_python_cuts(lines: list[str], final_newline: bool) -> None:
    block = "\n".join(lines).encode() + (b"\n" if final_newline and lines else b"")
    split = native.split_block(block, 1000)
    assert split is not None and split is not False
    text, sizes = split
    expected = block.split(b"\n")
    if block.endswith(b"\n") or not block:
        expected = expected[:-1]
    assert text.to_list() == [line.decode() for line in expected]
    assert sizes.to_list() == [len(line) + 1 for line in expected[:-1]] + (
        [len(expected[-1]) + (1 if block.endswith(b"\n") else 0)] if expected else []
    )
    assert sum(sizes.to_list()) == len(block)


def test_split_block_leaves_other_blocks_to_the_general_path_and_refuses_long_lines() -> None:
    assert native.split_block("é\n".encode(), 100) is False
    assert native.split_block(b"a\r\n", 100) is False
    assert native.split_block(b"abc\nabcd\n", 3) is None  # 4 bytes and a newline: over a 3-byte limit
    assert native.split_block(b"abc\nabcd", 3) is None  # the file's last line, no newline
    assert native.split_block(b"abc\nabc", 3) is not None


def test_views_outside_their_buffer_are_refused_before_anything_is_read() -> None:
    data = b"a line longer than twelve bytes"
    view = bytearray(16)
    view[0:4] = (len(data)).to_bytes(4, "little")
    view[4:8] = data[:4]
    marks = bytearray(1)
    native.tokens().directive_marks(bytes(view), [data], marks)  # inside: read
    assert marks == b"\x00"
    view[12:16] = (1).to_bytes(4, "little")  # one byte further: its end is past the buffer's
    with pytest.raises(ValueError, match="outside its data buffer"):
        native.tokens().directive_marks(bytes(view), [data], marks)
    view[8:12] = (1).to_bytes(4, "little")  # a buffer that is not there
    with pytest.raises(ValueError, match="outside its data buffer"):
        native.tokens().directive_marks(bytes(view), [data], marks)
    view[0:4] = (-5).to_bytes(4, "little", signed=True)
    with pytest.raises(ValueError, match="negative size"):
        native.tokens().directive_marks(bytes(view), [data], marks)
