"""Squid native ``access.log``: ``%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt``.

Whitespace runs separate the fields (``%6tr`` is padded). HTTPS shows as ``CONNECT host:port``; ``-`` is
empty; a ``*_DENIED`` result code is a blocked request. Extra fields (``log_mime_hdrs``) are ignored.

``parse_frame`` is vectorised: the C tokeniser (``native``) reads a regular line's record in one pass over
its bytes, or, where it is not built, polars expressions split and type the lines as columns; any line the
columnar rules do not fully cover (syslog prefix, odd timestamp, a hostname peer, too few fields) goes
through ``parse_line``, so every path gives the same records and reasons (tests/…/test_squid.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from trustplane.discovery.parsers import native
from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    EMPTY,
    FRAME_SCHEMA,
    Lines,
    LogParser,
    ParseOutcome,
    Rejection,
    TrafficRecord,
    finish,
    host_of,
    with_irregular_lines,
)

TOO_FEW = Rejection("too few fields", "Squid native needs 10 whitespace-separated fields")
BAD_TIME = Rejection("bad timestamp", "first field is not epoch seconds")
BAD_STATUS = Rejection("bad result code", "fourth field is not CODE/STATUS")


_IP_PATTERN = r"^[0-9.]*[0-9][0-9.]*$|:"
_IP = re.compile(_IP_PATTERN)


def _is_ip(value: str) -> bool:
    return _IP.search(value) is not None


class SquidNativeParser(LogParser):
    name = "squid"
    sources = ("SQUID", "SQUID_NATIVE", "SQUID_NATIVE_SYSLOG")

    def parse_line(self, line: str) -> ParseOutcome:
        parts = line.split()
        if not parts:
            return EMPTY
        if len(parts) < 10:
            return TOO_FEW
        if not parts[0][:1].isdigit():  # a syslog-forwarded line: the record starts at the epoch field
            for i, part in enumerate(parts):
                if part[:1].isdigit() and "." in part and part.replace(".", "", 1).isdigit():
                    parts = parts[i:]
                    break
            if len(parts) < 10:
                return TOO_FEW
        ts, _elapsed, client, code, size, method, url, user, hier = parts[:9]
        try:
            seconds = float(ts)
            if not (0 <= seconds < 1e11):
                return BAD_TIME
            time = datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            return BAD_TIME
        slash = code.find("/")
        if slash <= 0:
            return BAD_STATUS
        result = code[:slash]
        if method == "CONNECT":
            dest_url = None
            dest_host = host_of(url)
        else:
            dest_url = url if url != "-" else None
            dest_host = host_of(url) if dest_url else None
        peer = hier[hier.find("/") + 1 :] if "/" in hier else ""
        record = TrafficRecord(
            time=time,
            source_ip=client if client != "-" else None,
            user=user if user != "-" else None,
            dest_host=dest_host,
            dest_url=dest_url,
            dest_ip=peer if _is_ip(peer) else None,
            bytes_down=int(size) if size.isascii() and size.isdigit() and len(size) < 19 else None,
            action=BLOCKED if "DENIED" in result else ALLOWED,
            extra={"method": method, "status": code[slash + 1 :], "result": result},
        )
        if dest_host is None and peer and peer != "-" and not _is_ip(peer):
            record.dest_host = peer.lower()  # older Squid: DIRECT/hostname
        return finish(record)

    def parse_frame(
        self, lines: Lines, *, plain: bool = False
    ) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
        if native.available() and len(lines):
            return _native_frame(self, lines, plain)
        return _squid_frame(self, lines, plain)


_NATIVE_VALUES = ("source_ip", "user", "dest_host", "dest_url", "dest_ip")


def _native_frame(
    parser: SquidNativeParser, lines: Lines, plain: bool
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    """The C tokeniser's records of the regular lines (``_tokens.squid_values`` says which they are), then
    ``parse_line`` for the others."""
    series = lines if isinstance(lines, pl.Series) else pl.Series("line", lines, dtype=pl.String)
    buffers = native.LineBuffers.of(series)
    n = buffers.count
    found = native.Values.allocate(buffers, len(_NATIVE_VALUES))
    numbers = pa.allocate_buffer(3 * 8 * n)
    known = pa.allocate_buffer((n + 7) // 8)
    found.used = native.tokens().squid_values(
        buffers.views,
        buffers.buffers,
        found.views,
        found.validity,
        found.out,
        found.shape,
        memoryview(numbers).cast("B").cast("q", [3, n]),
        memoryview(known).cast("B"),
        plain,
    )

    values = dict(zip(_NATIVE_VALUES, found.columns(range(len(_NATIVE_VALUES)), _NATIVE_VALUES), strict=True))
    frame = pl.DataFrame(
        {
            "time": native.int64_column(numbers, 0, n).cast(pl.Datetime("us", "UTC")),
            **values,
            "bytes_up": pl.repeat(None, n, dtype=pl.Int64, eager=True),
            "bytes_down": native.int64_column(numbers, 1, n, known),
            "bytes_total": pl.repeat(None, n, dtype=pl.Int64, eager=True),
            "blocked": native.int64_column(numbers, 2, n) != 0,
        },
        schema=FRAME_SCHEMA,
    )
    regular = found.regular()
    if regular.all():
        return frame, []
    return with_irregular_lines(
        parser, lines, pl.DataFrame({"regular": regular}).with_row_index("i"), frame.filter(regular)
    )


# Control characters: Python's str.split() takes some of them (\x0b, \x0c, \x1c-\x1f) as whitespace.
_CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]


def _micros(seconds: pl.Expr) -> pl.Expr:
    """``datetime.fromtimestamp``'s microseconds of non-negative epoch seconds: the whole seconds, and their
    fraction in microseconds rounded half to even (scaling the whole float first rounds differently)."""
    whole = seconds.floor()
    fraction = ((seconds - whole) * 1_000_000).round(0, mode="half_to_even")
    return whole.cast(pl.Int64) * 1_000_000 + fraction.cast(pl.Int64)


def _squid_frame(
    parser: SquidNativeParser, lines: Lines, plain: bool = False
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    """The columnar rules cover a regular line: printable ASCII, single spaces between fields except the
    padding after the timestamp, a numeric timestamp, at least ten fields, a URL without user info or
    brackets whose scheme, if any, is ``http://`` or ``https://``. Only plain string operations and anchored
    patterns per line (no regex scans a whole line); each select computes what the next one reads, so no
    expression is evaluated twice."""
    line = pl.col("line")
    ts_end = line.str.find(" ", literal=True)
    rest = line.str.slice(ts_end).str.strip_chars_start(" ")
    text = (line.str.len_bytes() == line.str.len_chars()) & ~line.str.contains_any(_CONTROL)
    frame = pl.DataFrame({"line": pl.Series("line", lines, dtype=pl.String)}).select(
        line.str.head(ts_end).alias("ts_text"),
        rest.str.split(" ").alias("f"),
        *([] if plain else [text.alias("text")]),
    )
    f = pl.col("f").list
    client, code, size, method, url, user, hier = (f.get(k, null_on_oob=True) for k in range(1, 8))
    frame = frame.select(
        pl.col("ts_text").cast(pl.Float64, strict=False).alias("ts"),
        (
            pl.col("ts_text").str.contains(r"^[0-9]+(?:\.[0-9]+)?$")
            & (f.len() >= 9)
            & ~f.contains("")  # a field the split saw empty: a double space, a trailing blank
            & (pl.lit(True) if plain else pl.col("text"))
        ).alias("ok"),
        client.alias("source_ip"),
        code.alias("code"),
        size.alias("size"),
        method.alias("method"),
        url.alias("url"),
        user.alias("user"),
        hier.alias("hier"),
    )
    url, code, hier = pl.col("url"), pl.col("code"), pl.col("hier")
    after = (
        pl.when(url.str.starts_with("https://"))
        .then(url.str.slice(8))
        .when(url.str.starts_with("http://"))
        .then(url.str.slice(7))
        .otherwise(url)
    )
    frame = frame.select(
        "ts",
        "source_ip",
        "ok",
        "code",
        "hier",
        pl.when(pl.col("user") != "-").then(pl.col("user")).alias("user"),
        pl.when(pl.col("method") != "CONNECT").then(url).alias("dest_url"),
        after.alias("after"),
        pl.when(pl.col("size").str.contains(r"^[0-9]{1,18}$"))
        .then(pl.col("size").cast(pl.Int64, strict=False))
        .alias("bytes_down"),
        ((url != "-") & ~url.str.contains_any(["@", "["])).alias("url_ok"),
    )
    after, host_end = pl.col("after"), pl.col("host_end")
    # where the host ends: the first of ":/?#]" (the URL has no "@" or "["), or past the end
    frame = frame.with_columns(after.str.find(r"[:/?#\]]").fill_null(1 << 30).alias("host_end"))
    frame = frame.select(
        "ts",
        "source_ip",
        "user",
        "dest_url",
        after.str.head(host_end).str.strip_chars_end(".").str.to_lowercase().alias("dest_host"),
        pl.when(hier.str.contains(r"^[^/]*/(?:[0-9.]*[0-9][0-9.]*$|.*:)"))
        .then(hier.str.slice(hier.str.find("/", literal=True) + 1))
        .alias("dest_ip"),
        "bytes_down",
        code.str.contains(r"^[^/]*DENIED").alias("blocked"),
        (
            pl.col("ok")
            & pl.col("url_ok")
            & (after.str.slice(host_end, 3) != "://")  # another scheme: host_of would skip it
            & (code.str.find("/", literal=True) > 0)
            & (pl.col("source_ip") != "-")
            & hier.str.contains("/", literal=True)
        ).alias("regular"),
    )
    regular = (
        pl.col("regular") & pl.col("ts").is_between(0, 1e11, closed="left") & (pl.col("dest_host") != "")
    ).fill_null(False)
    frame = frame.with_columns(regular.alias("regular"))
    everything = frame.get_column("regular").all()
    good = (frame if everything else frame.filter("regular")).select(
        _micros(pl.col("ts")).cast(pl.Datetime("us", "UTC")).alias("time"),
        "source_ip",
        "user",
        "dest_host",
        "dest_url",
        "dest_ip",
        pl.lit(None, pl.Int64).alias("bytes_up"),
        "bytes_down",
        pl.lit(None, pl.Int64).alias("bytes_total"),
        "blocked",
    )
    if everything:
        return good, []
    return with_irregular_lines(parser, lines, frame.with_row_index("i"), good)
