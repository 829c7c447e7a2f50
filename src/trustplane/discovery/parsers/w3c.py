"""W3C Extended Log File Format (IIS, MS ISA/TMG, Blue Coat ProxySG, Barracuda).

``#Fields:`` names the columns and may change anywhere in the file; the parser re-reads it (its state, kept
across a resumed job). Values are separated by runs of whitespace; Blue Coat double-quotes values holding
spaces. ``-`` is empty. Directive lines are rejected with the reason ``directive`` so every line is
counted.

``parse_frame`` is vectorised with polars: a batch is cut into runs at its ``#Fields`` lines, and the runs
sharing a field list are parsed as columns together; every line the columnar rules do not fully cover
(directives, odd spacing or quoting, a bad date, a value count off, no host) goes through ``parse_line`` with
that run's fields, so both paths give the same records and reasons (tests/…/test_w3c_frame.py)."""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from trustplane.discovery.parsers import native
from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    EMPTY,
    FRAME_SCHEMA,
    MAX_LINE_BYTES,
    NO_TIME,
    Lines,
    LogParser,
    ParseOutcome,
    Rejection,
    TrafficRecord,
    empty_to_none,
    finish,
    host_of,
    to_int,
    with_irregular_lines,
)

DIRECTIVE = Rejection("directive", "W3C header line")
NO_FIELDS = Rejection("no #Fields directive", "a data line before any #Fields line")

_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(\S+)')


def split_values(line: str) -> list[str]:
    if '"' not in line:
        return line.split()
    return [
        m.group(2) if m.group(1) is None else m.group(1).replace('""', '"') for m in _TOKEN.finditer(line)
    ]


def w3c_time(date: str | None, clock: str | None) -> datetime | None:
    """``YYYY-M-D`` and ``HH:MM:SS[.fff]``, UTC as the format specifies; digits are checked by hand because
    this runs once per line."""
    if not date or not clock:
        return None
    d = date.split("-")
    t = clock.split(":")
    if len(d) != 3 or len(t) != 3:
        return None
    sec, _, frac = t[2].partition(".")
    parts = (*d, t[0], t[1], sec)
    if not all(p.isdigit() and len(p) <= 4 for p in parts) or (frac and not frac.isdigit()):
        return None
    try:
        return datetime(
            int(d[0]), int(d[1]), int(d[2]), int(t[0]), int(t[1]), int(sec),
            int((frac + "000000")[:6]) if frac else 0, tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None


_HOST_FIELDS = ("cs-host", "cs(Host)", "r-host", "x-host", "s-sitename-host")
_BYTES_UP = ("cs-bytes",)
_BYTES_DOWN = ("sc-bytes",)
_DEST_IP = ("r-ip", "s-supplier-ip", "cs-ip", "r-supplier-ip")


class W3cParser(LogParser):
    name = "w3c"
    sources = (
        "GENERIC_W3C",
        "GENERIC_W3C_SYSLOG",
        "BLUECOAT",
        "BLUECOAT_SYSLOG",
        "MICROSOFT_ISA_W3C",
        "BARRACUDA",
    )
    # Runs (lines sharing a field list) shorter than this in a batch go line by line: the columnar set-up
    # costs more than it saves.
    min_columnar_lines = 32

    def __init__(self) -> None:
        self.fields: list[str] = []
        self._index: dict[str, int] = {}

    def state(self) -> dict[str, Any]:
        return {"fields": list(self.fields)}

    def restore(self, state: dict[str, Any]) -> None:
        self._set_fields([str(f) for f in state.get("fields", [])])

    def state_after(self, data: Any, start: int, end: int, state: dict[str, Any]) -> dict[str, Any] | None:
        """The fields of the last ``#Fields`` directive among the lines (as ``parse_line`` reads it: a line
        over the length limit is never read), else ``state``'s."""
        pos = end
        while (pos := data.rfind(b"#Fields:", start, pos)) >= 0:
            nl = data.rfind(b"\n", start, pos)
            line_start = start if nl < 0 else nl + 1
            line_end = data.find(b"\n", pos, end)
            line_end = end if line_end < 0 else line_end
            if line_end - line_start > MAX_LINE_BYTES:
                continue
            text = bytes(data[line_start:line_end]).decode("utf-8", "replace").strip()
            if text.startswith("#Fields:"):
                return {"fields": text[8:].split()}
        return {"fields": list(state.get("fields", []))}

    def _set_fields(self, fields: list[str]) -> None:
        self.fields = fields
        self._index = {}
        for i, name in enumerate(fields):
            self._index.setdefault(name, i)

    def parse_frame(
        self, lines: Lines, *, plain: bool = False
    ) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
        fields = list(self.fields)
        try:
            return _w3c_frame(self, lines, plain)
        except Exception:  # the caller's per-line fallback re-reads the batch from the state it began with
            self._set_fields(fields)
            raise

    def parse_line(self, line: str) -> ParseOutcome:
        stripped = line.strip()
        if not stripped:
            return EMPTY
        if stripped[0] == "#":
            if stripped.startswith("#Fields:"):
                self._set_fields(stripped[8:].split())
            return DIRECTIVE
        if not self.fields:
            return NO_FIELDS
        values = split_values(stripped)
        if len(values) != len(self.fields):
            return Rejection("field count mismatch", f"{len(values)} values for {len(self.fields)} #Fields")
        index = self._index

        def get(*names: str) -> str | None:
            for name in names:
                i = index.get(name)
                if i is not None:
                    v = values[i]
                    if v and v != "-":
                        return v
            return None

        time = w3c_time(get("date"), get("time"))
        if time is None:
            return NO_TIME
        host = get(*_HOST_FIELDS)
        url = get("cs-uri")
        if url is None and host is not None:
            scheme = get("cs-uri-scheme") or "http"
            path = get("cs-uri-path", "cs-uri-stem") or "/"
            query = get("cs-uri-query")
            port = get("cs-uri-port")
            netloc = host if port in (None, "80", "443") else f"{host}:{port}"
            if query is not None and not query.startswith("?"):
                query = "?" + query
            url = f"{scheme}://{netloc}{path}{query or ''}"
        result = (get("sc-filter-result") or "").upper()
        s_action = (get("s-action") or "").upper()
        blocked = result == "DENIED" or "DENIED" in s_action
        record = TrafficRecord(
            time=time,
            source_ip=get("c-ip"),
            user=empty_to_none(get("cs-username")),
            dest_host=host.lower() if host else (host_of(url) if url else None),
            dest_url=url,
            dest_ip=get(*_DEST_IP),
            bytes_up=to_int(get(*_BYTES_UP)),
            bytes_down=to_int(get(*_BYTES_DOWN)),
            action=BLOCKED if blocked else ALLOWED,
        )
        for key, names in (
            ("status", ("sc-status",)),
            ("method", ("cs-method",)),
            ("app", ("x-bluecoat-application-name",)),
        ):
            v = get(*names)
            if v is not None:
                record.extra[key] = v
        return finish(record)


# ---- the columnar path ----------------------------------------------------------------------------------

# A quoted value stands in the line as this one character while it is split (a regular line has none).
_QUOTED = "\x01"
_CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]
# A superset of the directive lines: the first character that is not blank (in any sense) is "#".
_DIRECTIVE_CANDIDATE = r"^[^\x21-\x7e]*#"
_NULL = pl.lit(None, pl.String)
# What ``_tokens.w3c_records`` reads, by role (its order): the fields each value is taken from, in order.
_ROLES: tuple[tuple[str, ...], ...] = (
    ("date",), ("time",), ("c-ip",), ("cs-username",), _HOST_FIELDS, ("cs-uri",), ("cs-uri-scheme",),
    ("cs-uri-port",), ("cs-uri-path", "cs-uri-stem"), ("cs-uri-query",), _DEST_IP, _BYTES_UP, _BYTES_DOWN,
    ("sc-filter-result",), ("s-action",),
)  # fmt: skip
_RECORD_VALUES = ("source_ip", "user", "dest_host", "dest_url", "dest_ip")
# Every field parse_line reads.
_WANTED = (
    "date", "time", "cs-uri", "cs-uri-scheme", "cs-uri-path", "cs-uri-stem", "cs-uri-query", "cs-uri-port",
    "sc-filter-result", "s-action", "c-ip", "cs-username", *_HOST_FIELDS, *_BYTES_UP, *_BYTES_DOWN, *_DEST_IP,
)  # fmt: skip


def _w3c_frame(
    parser: W3cParser, lines: Lines, plain: bool
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    """A regular line is printable ASCII, its values single-space separated, each either bare (no quote) or
    wholly quoted without a quote inside, its count the run's field count, a ``YYYY-MM-DD`` date and an
    ``HH:MM:SS[.f]`` time, and a destination (a host field, a URL without user info or brackets, or else an
    IP field). Then Python's
    tokeniser (``split_values``) and ``str.split(" ")`` of the line with each quoted value swapped for one
    placeholder agree token for token."""
    line, bare = pl.col("line"), pl.col("bare")
    series = lines if isinstance(lines, pl.Series) else pl.Series("line", lines, dtype=pl.String)
    frame = pl.DataFrame({"line": series.alias("line")}).with_row_index("i")
    candidate = (
        line.str.strip_chars_start(" ").str.starts_with("#")  # printable ASCII: a blank is a space
        if plain
        else line.str.contains(_DIRECTIVE_CANDIDATE)
    )
    tokeniser: _Tokeniser | None = None
    if native.available() and len(series):  # the C tokeniser finds the values: no token columns here
        tokeniser = _Tokeniser(native.LineBuffers.of(series), plain)
        frame = frame.with_columns(tokeniser.directives() if plain else candidate.alias("candidate"))
    else:
        # Quotes pair left to right as the tokeniser pairs them; a lone quote is left over.
        frame = frame.with_columns(line.str.replace_all(r'"[^"]*"', _QUOTED).alias("bare"))
        frame = frame.with_columns(candidate.alias("candidate"), bare.str.split(" ").alias("t"))
        frame = frame.with_columns(
            (
                # every quote paired and every pair a whole token (an odd count never passes)
                (pl.col("t").list.count_matches(_QUOTED) * 2 == line.str.count_matches('"', literal=True))
                & ~pl.col("candidate")
                & (bare != "")
                & ~bare.str.contains("  ", literal=True)
                & ~bare.str.starts_with(" ")
                & ~bare.str.ends_with(" ")
                & (
                    pl.lit(True)
                    if plain
                    else (line.str.len_bytes() == line.str.len_chars()) & ~line.str.contains_any(_CONTROL)
                )
            ).alias("shape")
        )
    # Runs: a #Fields directive starts one; lines before the batch's first take the parser's fields.
    fields = list(parser.fields)
    starts, run_fields = [0], [fields]
    for i in frame.filter("candidate")["i"].to_list():
        stripped = lines[i].strip()
        if stripped.startswith("#Fields:"):
            starts.append(i)
            run_fields.append(stripped[8:].split())
    groups: dict[tuple[str, ...], list[int]] = {}
    for run, run_names in enumerate(run_fields):
        groups.setdefault(tuple(run_names), []).append(run)
    if len(groups) > 1:
        run_of_line = pl.Series(starts).search_sorted(frame["i"], side="right") - 1
        frame = frame.with_columns(run=run_of_line)
    sizes = [b - a for a, b in zip(starts, [*starts[1:], len(frame)], strict=True)]
    good: list[pl.DataFrame] = []
    rejections: list[tuple[int, Rejection]] = []
    for names, runs in groups.items():
        part = frame if len(groups) == 1 else frame.filter(pl.col("run").is_in(runs))
        parser._set_fields(list(names))
        if sum(sizes[r] for r in runs) < parser.min_columnar_lines:
            columns, regular = _all_irregular(part)
        else:
            columns, regular = _columns(part, parser._index, len(names), tokeniser)
        g, r = with_irregular_lines(parser, lines, regular, columns)
        good.append(g)
        rejections.extend(r)
    parser._set_fields(run_fields[-1])
    rejections.sort(key=lambda item: item[0])  # samples are the first rejects in line order
    result = good[0] if len(good) == 1 else pl.concat(good, how="vertical")
    return result, rejections


def _all_irregular(part: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.DataFrame(schema=FRAME_SCHEMA), part.select("i", pl.lit(False).alias("regular"))


class _Tokeniser:
    """The C tokeniser over a batch's lines: for the lines of some runs, which are regular (as the polars
    rules in ``_w3c_frame`` and ``_columns`` decide) and their wanted values."""

    def __init__(self, lines: native.LineBuffers, plain: bool) -> None:
        self.lines = lines
        self.plain = plain

    def directives(self) -> pl.Series:
        """Which lines are directive candidates (the first byte that is not a space is ``#``); the lines are
        printable ASCII."""
        n = self.lines.count
        marks = pa.allocate_buffer(n)
        native.tokens().directive_marks(self.lines.views, self.lines.buffers, memoryview(marks).cast("B"))
        array = pa.Array.from_buffers(pa.uint8(), n, [None, marks])
        return pl.Series("candidate", pl.from_arrow(array)).cast(pl.Boolean)

    def records(
        self, part: pl.DataFrame, index: dict[str, int], count: int
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``_columns`` for ``part``'s lines (some runs of the batch, sharing ``index``'s fields), read by
        ``_tokens.w3c_records``: the FRAME_SCHEMA columns of the regular lines, and which are regular."""
        n = self.lines.count
        rows: pl.Series | None = None
        if part.height < n:
            rows = pl.repeat(0, n, dtype=pl.UInt8, eager=True).alias("rows")
            rows.scatter(part.get_column("i"), 1)
        rows_buffer = pa.py_buffer(b"\x01" * n) if rows is None else rows.to_arrow().buffers()[1]
        width = max(len(names) for names in _ROLES)
        spec = array("q", [-1] * (len(_ROLES) * width))
        for role, names in enumerate(_ROLES):
            for k, name in enumerate(names):
                spec[role * width + k] = index.get(name, -1)
        found = native.Values.allocate(self.lines, len(_RECORD_VALUES))
        facts = pa.allocate_buffer(4 * 8 * n)
        known = pa.allocate_buffer(2 * ((n + 7) // 8))
        found.used = native.tokens().w3c_records(
            self.lines.views,
            self.lines.buffers,
            count,
            memoryview(spec).cast("B").cast("q", [len(_ROLES), width]),
            found.views,
            found.validity,
            found.out,
            found.shape,
            memoryview(rows_buffer).cast("B")[:n],
            self.plain,
            memoryview(facts).cast("B").cast("q", [4, n]),
            memoryview(known).cast("B").cast("B", [2, (n + 7) // 8]),
        )
        bitmap = (n + 7) // 8

        def fact(row: int, bits: int | None = None) -> pl.Series:
            validity = None if bits is None else known.slice(bits * bitmap, bitmap)
            return native.int64_column(facts, row, n, validity)

        values = found.columns(range(len(_RECORD_VALUES)), _RECORD_VALUES)
        frame = pl.DataFrame(
            {
                "time": fact(0).cast(pl.Datetime("us", "UTC")),
                **{value.name: value for value in values},
                "bytes_up": fact(2, 1),
                "bytes_down": fact(1, 0),
                "bytes_total": pl.repeat(None, n, dtype=pl.Int64, eager=True),
                "blocked": fact(3) != 0,
            },
            schema=FRAME_SCHEMA,
        )
        regular = found.regular().alias("regular")
        if rows is None and regular.all():
            good = frame
        else:
            good = frame.filter(regular)
        return good, part.select("i").with_columns(regular.gather(part.get_column("i")))


def _columns(
    part: pl.DataFrame, index: dict[str, int], count: int, tokeniser: _Tokeniser | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The run's FRAME_SCHEMA columns for its regular lines, and which lines are regular."""
    if not count or "date" not in index or "time" not in index:  # parse_line rejects every data line
        return _all_irregular(part)
    if tokeniser is not None:
        return tokeniser.records(part, index, count)
    wanted = sorted({index[name] for name in _WANTED if name in index})
    tokens = pl.col("t").list
    part = part.select(
        "i",
        "line",
        "t",
        (pl.col("shape") & (tokens.len() == count)).alias("shape"),
        *(_present(tokens.get(k, null_on_oob=True)).alias(f"v{k}") for k in wanted),
    )
    # A wanted value that was quoted stands as the placeholder: its text is the n-th quoted string.
    quoted_at = part.select([(pl.col(f"v{k}") == _QUOTED).any() for k in wanted]).row(0)
    fixes = []
    for k, quoted in zip(wanted, quoted_at, strict=True):
        if quoted:
            nth = tokens.head(k).list.count_matches(_QUOTED)
            text = pl.col("line").str.extract_all(r'"[^"]*"').list.get(nth, null_on_oob=True)
            v = pl.col(f"v{k}")
            fixes.append(
                pl.when(v == _QUOTED)
                .then(_present(text.str.slice(1).str.head(-1)))
                .otherwise(v)
                .alias(f"v{k}")
            )
    if fixes:
        part = part.with_columns(fixes)
    return _value_columns(part, index)


def _value_columns(part: pl.DataFrame, index: dict[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """From ``part``'s ``shape`` and wanted values (``v{k}``, ``_present`` applied), the FRAME_SCHEMA
    columns of its regular lines and which lines are regular."""

    def get(*names: str) -> pl.Expr:
        columns = [pl.col(f"v{index[name]}") for name in names if name in index]
        if not columns:
            return _NULL
        return columns[0] if len(columns) == 1 else pl.coalesce(columns)

    time, time_ok, bytes_up, bytes_down, blocked = _facts(part, get)
    host, url = get(*_HOST_FIELDS), get("cs-uri")
    query, port = get("cs-uri-query"), get("cs-uri-port")
    rebuilt = pl.concat_str(
        get("cs-uri-scheme").fill_null("http"),
        pl.lit("://"),
        host,
        pl.when(port.is_null() | port.is_in(["80", "443"])).then(pl.lit("")).otherwise(":" + port),
        get("cs-uri-path", "cs-uri-stem").fill_null("/"),
        pl.when(query.is_null())
        .then(pl.lit(""))
        .when(query.str.starts_with("?"))
        .then(query)
        .otherwise("?" + query),
    )
    # host_of for a URL without user info, brackets or blanks: the scheme off, up to the port / path.
    after = (
        pl.when(url.str.contains(r"^[A-Za-z][A-Za-z0-9+.\-]*://"))
        .then(url.str.slice(url.str.find("://", literal=True) + 3))
        .otherwise(url)
    )
    url_host = (
        after.str.head(after.str.find(r"[:/?#\]]").fill_null(after.str.len_chars()))
        .str.strip_chars_end(".")
        .str.to_lowercase()
    )
    user = get("cs-username").str.strip_chars()
    dest_ip = get(*_DEST_IP)
    has_host, has_url = any(n in index for n in _HOST_FIELDS), "cs-uri" in index
    # Only what the run's fields can give is computed.
    url_ok = url.is_not_null() & ~url.str.contains_any(["@", "[", " "]) & (url_host != "")
    if has_host and has_url:
        dest_host = pl.when(host.is_not_null()).then(host.str.to_lowercase()).otherwise(url_host)
        dest_url = pl.when(url.is_not_null()).then(url).otherwise(rebuilt)
        destination = host.is_not_null() | url_ok
    elif has_host:
        dest_host, dest_url, destination = host.str.to_lowercase(), rebuilt, host.is_not_null()
    elif has_url:
        dest_host, dest_url, destination = url_host, url, url_ok
    else:
        dest_host, dest_url, destination = _NULL, _NULL, pl.lit(False)
    destination = destination | (url.is_null() & dest_ip.is_not_null())  # an IP for its destination
    result = part.select(
        "i",
        time.alias("time"),
        get("c-ip").alias("source_ip"),
        pl.when(user.is_in(["", "-", "None", "NA", "N/A", '""'])).then(_NULL).otherwise(user).alias("user"),
        dest_host.alias("dest_host"),
        dest_url.alias("dest_url"),
        dest_ip.alias("dest_ip"),
        bytes_up.alias("bytes_up"),
        bytes_down.alias("bytes_down"),
        pl.lit(None, pl.Int64).alias("bytes_total"),
        blocked.alias("blocked"),
        (pl.col("shape") & time_ok & destination).fill_null(False).alias("regular"),
    )
    good = result.filter("regular").select(list(FRAME_SCHEMA))
    return good, result.select("i", "regular")


def _facts(
    part: pl.DataFrame, get: Callable[..., pl.Expr]
) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """The time (and whether the date and time follow the columnar rule), the bytes up and down, and
    whether the filter blocked the request, from the value columns."""
    date, clock = get("date"), get("time")
    day = date.str.to_date("%Y-%m-%d", strict=False)
    hour, minute, second = (clock.str.slice(a, 2).cast(pl.Int64, strict=False) for a in (0, 3, 6))
    fraction = part.select(clock.str.len_bytes().max()).item() or 0
    micros = (  # only a batch with fractions of a second pays for them
        (clock.str.slice(9) + "000000").str.head(6).cast(pl.Int64, strict=False)
        if fraction > 8
        else pl.lit(0)
    )
    time_ok = (
        date.str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
        & (date.str.head(4) != "0000")  # a year Python's datetime has not
        & day.is_not_null()
        & clock.str.contains(r"^[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?$")
        & (hour < 24)
        & (minute < 60)
        & (second < 60)
    )
    stamp = day.cast(pl.Int64) * 86_400_000_000 + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros
    blocked = (get("sc-filter-result").str.to_uppercase() == "DENIED").fill_null(False) | get(
        "s-action"
    ).str.to_uppercase().str.contains("DENIED", literal=True).fill_null(False)
    return (
        stamp.cast(pl.Datetime("us", "UTC")),
        time_ok,
        _count(get(*_BYTES_UP)),
        _count(get(*_BYTES_DOWN)),
        blocked,
    )


def _present(value: pl.Expr) -> pl.Expr:
    """``get``'s rule: an empty value or ``-`` is no value."""
    return pl.when((value != "") & (value != "-")).then(value)


def _count(value: pl.Expr) -> pl.Expr:
    """``to_int``: up to 18 ASCII digits, blanks around them ignored (a regular value has no quote)."""
    value = value.str.strip_chars()
    return pl.when(value.str.contains(r"^[0-9]{1,18}$")).then(value.cast(pl.Int64, strict=False))
