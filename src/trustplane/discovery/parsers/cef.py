"""ArcSight Common Event Format: ``CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension``.

The header's ``|`` may be escaped ``\\|``; in the extension ``=`` is escaped ``\\=``, ``\\`` is ``\\\\`` and
line breaks are ``\\n`` / ``\\r``. A value runs until the next `` key=``. A syslog header may precede
``CEF:``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import polars as pl

from trustplane.discovery.parsers import native
from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    EMPTY,
    FRAME_SCHEMA,
    HOST_PATTERN,
    NO_TIME,
    Lines,
    LogParser,
    ParseOutcome,
    Rejection,
    TrafficRecord,
    empty_to_none,
    finish,
    from_epoch,
    is_blocking_action,
    parse_time,
    to_int,
    with_irregular_lines,
)

NOT_CEF = Rejection("not CEF", "no CEF: header")
SHORT_HEADER = Rejection("truncated header", "CEF needs 7 header fields")

_KEY = re.compile(r"(?:^|(?<= ))([A-Za-z0-9_.\-\[\]]+)=")
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "r": "\r", "=": "=", "\\": "\\", "|": "|"}


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), value)


def split_header(text: str, count: int) -> tuple[list[str], str] | None:
    """Split ``count`` pipe-terminated header fields off ``text``; a pipe after an odd run of backslashes is
    part of the field. Returns the unescaped fields and the rest, or None if fewer pipes exist."""
    fields: list[str] = []
    pos = 0
    start = 0
    while len(fields) < count:
        bar = text.find("|", pos)
        if bar < 0:
            return None
        slashes = 0
        j = bar - 1
        while j >= start and text[j] == "\\":
            slashes += 1
            j -= 1
        if slashes % 2:
            pos = bar + 1
            continue
        fields.append(_unescape(text[start:bar]))
        start = pos = bar + 1
    return fields, text[start:]


def parse_extension(ext: str) -> dict[str, str]:
    """``key=value`` pairs; the first occurrence of a repeated key wins."""
    out: dict[str, str] = {}
    matches = list(_KEY.finditer(ext))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() - 1 if i + 1 < len(matches) else len(ext)
        key = m.group(1)
        if key not in out:
            value = ext[m.end() : end]
            out[key] = _unescape(value.rstrip() if i + 1 == len(matches) else value)
    return out


_CEF_TIME_FORMATS = (
    "%b %d %Y %H:%M:%S",
    "%b %d %Y %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
)


def cef_time(value: str | None) -> datetime | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return from_epoch(value)
    for fmt in _CEF_TIME_FORMATS:
        parsed = parse_time(value, fmt)
        if parsed is not None:
            return parsed
    return parse_time(value.rsplit(" ", 1)[0], "%b %d %Y %H:%M:%S")  # a trailing zone name


class CefParser(LogParser):
    name = "cef"
    sources = (
        "GENERIC_CEF",
        "GENERIC_CEF_SYSLOG",
        "CHECKPOINT_CEF_SYSLOG",
        "MENLO_SECURITY_CEF",
        "WEBSENSE_SIEM_CEF_SYSLOG",
        "ZSCALER_CEF_SYSLOG",
    )

    def parse_line(self, line: str) -> ParseOutcome:
        if not line.strip():
            return EMPTY
        at = line.find("CEF:")
        if at < 0:
            return NOT_CEF
        split = split_header(line[at + 4 :], 7)
        if split is None:
            return SHORT_HEADER
        header, ext = split
        fields = parse_extension(ext)
        g = fields.get
        time = None
        for key in ("rt", "end", "start", "deviceReceiptTime"):
            time = cef_time(g(key))
            if time is not None:
                break
        if time is None:
            return NO_TIME
        url = empty_to_none(g("request"))
        action = g("act") or g("outcome")
        record = TrafficRecord(
            time=time,
            source_ip=empty_to_none(g("src") or g("c6a2")),
            user=empty_to_none(g("suser") or g("duser")),
            dest_host=(empty_to_none(g("dhost")) or "").lower() or None,
            dest_url=url,
            dest_ip=empty_to_none(g("dst") or g("c6a3")),
            bytes_up=to_int(g("out")),
            bytes_down=to_int(g("in")),
            action=BLOCKED if is_blocking_action(action) else ALLOWED,
            extra={"vendor": header[1], "product": header[2], "signature": header[4], "name": header[5]},
        )
        return finish(record)

    def parse_frame(
        self, lines: Lines, *, plain: bool = False
    ) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
        return cef_frame(self, lines, plain)


# ---- vectorised path ---------------------------------------------------------------------------------
#
# The extension is cut from the line once. A wanted key's value starts after the literal `` key=`` (such a
# substring is always a key: keys hold no spaces) and ends at the space before the next `` other=``. Where
# the lines follow the batch's first line's key order and the value holds no space, the literal `` next=``
# ends it (``_values_by_layout``); otherwise one short regex scan finds the boundary (``_values``).

_HEADER = r"^.*?CEF:(?:[^|]*\|){7}"  # through the seventh pipe after the first ``CEF:``
_BOUNDARY = r" [A-Za-z0-9_.\-\[\]]+="  # the space before the next key
_FAR = 1 << 40
_KEYS = ("rt", "src", "suser", "dhost", "request", "dst", "out", "in", "act")
# ``g(first) or g(second)``: the second key is read only when some line of the batch needs it
_SECOND = {"src": "c6a2", "suser": "duser", "dst": "c6a3", "act": "outcome"}
_ALL_KEYS = (*_KEYS, *_SECOND.values())  # the C tokeniser finds them all in its one pass
_ALL_KEY_BYTES = [key.encode() for key in _ALL_KEYS]
_SENTINELS = ["", "-", "None", "NA", "N/A", '""']
_BLOCKING = r"^(?:block|deny|denied|drop|reject|reset|prevent|sinkhole)"
_CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]


def _present(col: pl.Expr) -> pl.Expr:
    """``empty_to_none``: stripped, and None when empty or a placeholder."""
    stripped = col.str.strip_chars()
    return pl.when(stripped.is_in(_SENTINELS)).then(None).otherwise(stripped)


def _either(first: str, seconds: list[str]) -> pl.Expr:
    """Python's ``g(first) or g(second)``: the second when the first is absent or empty. When no line of
    the batch needs the second (not in ``seconds``), the first alone: ``_present`` makes "" None anyway."""
    a = pl.col(first)
    if _SECOND[first] not in seconds:
        return a
    return pl.when(a.is_null() | (a == "")).then(pl.col(_SECOND[first])).otherwise(a)


def _int(col: pl.Expr) -> pl.Expr:
    digits = col.str.strip_chars().str.strip_chars('"')
    return (
        pl.when(digits.str.contains(r"^[0-9]{1,18}$"))
        .then(digits.cast(pl.Int64, strict=False))
        .otherwise(None)
    )


def _epoch_micros(frame: pl.DataFrame, digits: str) -> pl.Series:
    """``from_epoch`` to the microsecond as CPython computes it: the float, divided by 1000 while it is past
    1e11, then its fraction times 1e6 rounded half to even (``datetime.fromtimestamp``); one value per row
    of ``frame`` (the working columns ``_s`` and ``_w`` stay on a copy)."""
    frame = frame.with_columns(pl.col(digits).cast(pl.Int64, strict=False).cast(pl.Float64).alias("_s"))
    s = pl.col("_s")
    # a column divisor: polars divides a column by a scalar as a product with its reciprocal, which rounds
    # differently from Python's ``/ 1000.0`` now and then
    thousand = s * 0.0 + 1000.0
    for _ in range(2):  # at most 16 digits: twice is enough
        frame = frame.with_columns(pl.when(s >= 1e11).then(s / thousand).otherwise(s).alias("_s"))
    return (
        frame.with_columns(s.floor().alias("_w"))
        .select(
            pl.col("_w").cast(pl.Int64) * 1_000_000
            + ((s - pl.col("_w")) * 1e6).round(0, mode="half_to_even").cast(pl.Int64)
        )
        .to_series()
    )


def _values(frame: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """Adds each key's first value (still escaped) as a column named after the key: from its `` key=`` to
    the space before the next `` other=``."""
    ext = pl.col("ext")
    frame = frame.with_columns(
        ext.str.slice(ext.str.find(f" {k}=", literal=True) + len(k) + 2).alias(k) for k in keys
    )
    return frame.with_columns(pl.col(k).str.head(pl.col(k).str.find(_BOUNDARY).fill_null(_FAR)) for k in keys)


def _key_order(frame: pl.DataFrame) -> list[str]:
    """The keys of the batch's first extension, in order: the layout most lines of one source share."""
    sample = frame.get_column("ext").drop_nulls().head(1).to_list()
    return [m.group(1) for m in _KEY.finditer(sample[0])] if sample else []


def _values_by_layout(frame: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """``_values`` with literal searches only where a line follows the sample's layout: if ``k`` is
    followed by ``next`` in the sample and a line's text from ``k=`` to its first `` next=`` holds no space,
    that text is the value (a key boundary starts with a space, and `` next=`` is one). A key that some line
    does not fit is read by ``_values`` for the whole batch."""
    order = _key_order(frame)
    follower: dict[str, str | None] = {}
    for j, k in enumerate(order):
        if k in keys and k not in follower:
            follower[k] = order[j + 1] if j + 1 < len(order) else None
    ext = pl.col("ext")
    found = sorted(set(keys) | {n for n in follower.values() if n is not None})
    frame = frame.with_columns(
        ext.str.find(f" {k}=", literal=True).cast(pl.Int64).alias(f"_at_{k}") for k in found
    )
    values, fits = [], []
    for k in keys:
        at = pl.col(f"_at_{k}")
        start = at + len(k) + 2
        after = follower.get(k)
        if after is None:  # last in the sample, or not in it: to the end of the extension
            value = ext.str.slice(start)
            fit = ~pl.col(k).str.contains(" ", literal=True)
        else:
            end = pl.col(f"_at_{after}")
            value = ext.str.slice(start, (end - start).clip(0))
            fit = (end >= start) & ~pl.col(k).str.contains(" ", literal=True)
        values.append(value.alias(k))
        fits.append((at.is_null() | fit).fill_null(False).all().alias(k))
    frame = frame.with_columns(values)
    fitting = frame.select(fits).row(0, named=True)  # on the values just added
    frame = frame.drop(f"_at_{k}" for k in found)
    misfits = tuple(k for k in keys if not fitting[k])
    return _values(frame, misfits) if misfits else frame


def _native_values(
    series: pl.Series, plain: bool
) -> tuple[pl.DataFrame, Callable[[tuple[str, ...]], pl.DataFrame]]:
    """``i``, ``shape`` and the value of each of ``_KEYS`` (still escaped), found by the C tokeniser; and a
    function adding the values of other keys of ``_ALL_KEYS`` to the frame."""
    found = native.Values.allocate(native.LineBuffers.of(series), len(_ALL_KEYS))
    found.used = native.tokens().cef_values(
        found.lines.views,
        found.lines.buffers,
        _ALL_KEY_BYTES,
        found.views,
        found.validity,
        found.out,
        found.shape,
        plain,
    )
    frame = pl.DataFrame([found.regular(), *found.columns(range(len(_KEYS)), _KEYS)]).with_row_index("i")

    def more(keys: tuple[str, ...]) -> pl.DataFrame:
        return frame.with_columns(found.columns([_ALL_KEYS.index(key) for key in keys], keys))

    return frame, more


def _polars_values(series: pl.Series, plain: bool) -> pl.DataFrame:
    """``_native_values``' frame with polars expressions: the header cut off by a regex, then the keys'
    values by ``_values_by_layout``."""
    line = pl.col("line")
    frame = pl.DataFrame({"line": series}).with_row_index("i")
    frame = frame.select(
        "i",
        line.str.replace(_HEADER, " ").alias("ext"),
        line.str.len_bytes().alias("length"),
        line.str.find("\\", literal=True).alias("slash"),
        (
            pl.lit(True)
            if plain
            else (line.str.len_bytes() == line.str.len_chars()) & ~line.str.contains_any(_CONTROL)
        ).alias("shape"),
    )
    ext, length = pl.col("ext"), pl.col("length")
    header = length - ext.str.len_bytes() + 1  # through the seventh pipe; no match leaves the line as it was
    frame = frame.select(
        "i",
        ext.str.strip_chars_end(" "),
        (
            pl.col("shape")
            & (header > 1)
            & (pl.col("slash").is_null() | (pl.col("slash") >= header)).fill_null(False)
        ).alias("shape"),
    )
    return _values_by_layout(frame, _KEYS)


def cef_frame(
    parser: CefParser, lines: Lines, plain: bool = False
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    """The columnar rules cover a regular line: printable ASCII, no backslash in the header, none in the
    values read but as ``\\=``, no ``[`` in ``request``, an epoch ``rt`` and a destination. Any other line
    goes through ``parse_line``, so both paths give the same records and reasons
    (tests/discovery/parsers/test_cef_frame.py). A backslash cannot change where a key starts or ends (it is
    not a key character), so other values may hold any escapes."""
    series = lines if isinstance(lines, pl.Series) else pl.Series("line", lines, dtype=pl.String)
    if native.available() and len(series):
        frame, more = _native_values(series, plain)
    else:
        frame = _polars_values(series.alias("line"), plain)

        def more(keys: tuple[str, ...]) -> pl.DataFrame:
            return _values(frame, keys)

    seconds = [
        second
        for first, second in _SECOND.items()
        if frame.select((pl.col(first).is_null() | (pl.col(first) == "")).any()).item()
    ]
    frame = more(tuple(seconds)) if seconds else frame
    escaped = [k for k in (*_KEYS, *seconds) if frame.get_column(k).str.contains("\\", literal=True).any()]
    if escaped:  # ``\=`` is unescaped here; a value with any other escape goes through ``parse_line``
        frame = frame.with_columns(pl.col(k).str.replace_all("\\=", "=", literal=True) for k in escaped)
        frame = frame.with_columns(
            pl.col("shape") & ~pl.any_horizontal(pl.col(k).str.contains("\\", literal=True) for k in escaped)
        )
    frame = frame.with_columns(
        (
            pl.col("shape")
            & pl.col("rt").str.contains(r"^[0-9]{1,16}$")
            & ~pl.col("request").str.contains("[", literal=True).fill_null(False)
        ).fill_null(False)
    )
    micros = _epoch_micros(frame, "rt")
    url = _present(pl.col("request"))
    dhost = _present(pl.col("dhost")).str.to_lowercase()
    frame = frame.select(
        "i",
        pl.col("shape").alias("regular"),
        pl.lit(micros).cast(pl.Datetime("us", "UTC")).alias("time"),
        _present(_either("src", seconds)).alias("source_ip"),
        _present(_either("suser", seconds)).alias("user"),
        dhost.alias("dest_host"),
        url.alias("dest_url"),
        _present(_either("dst", seconds)).alias("dest_ip"),
        _int(pl.col("out")).alias("bytes_up"),
        _int(pl.col("in")).alias("bytes_down"),
        pl.lit(None, pl.Int64).alias("bytes_total"),
        _present(_either("act", seconds)).str.strip_chars('"').str.to_lowercase().alias("action"),
    )
    if frame.select((pl.col("dest_host").is_null() & pl.col("dest_url").is_not_null()).any()).item():
        url_host = (
            pl.col("dest_url")
            .str.extract(HOST_PATTERN, 1)
            .str.strip_chars()
            .str.strip_chars_end(".")
            .str.to_lowercase()
        )
        frame = frame.with_columns(pl.coalesce("dest_host", pl.when(url_host != "").then(url_host)))
    action = pl.col("action")
    frame = frame.with_columns(
        (pl.col("regular") & (pl.col("dest_host").is_not_null() | pl.col("dest_ip").is_not_null())).alias(
            "regular"
        ),
        (action.str.contains(_BLOCKING) | action.is_in(["blocked", "quarantine", "tcp_denied"]))
        .fill_null(False)
        .alias("blocked"),
    )
    good = frame.filter("regular").select(list(FRAME_SCHEMA))
    return with_irregular_lines(parser, lines, frame, good)
