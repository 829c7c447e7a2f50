"""Squid native ``access.log``: ``%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt``.

Whitespace runs separate the fields (``%6tr`` is padded). HTTPS shows as ``CONNECT host:port``; ``-`` is
empty; a ``*_DENIED`` result code is a blocked request. Extra fields (``log_mime_hdrs``) are ignored.

``parse_frame`` is vectorised with polars: the regular lines are split and typed as columns; any line the
columnar rules do not fully cover (syslog prefix, odd timestamp, a hostname peer, too few fields) goes
through ``parse_line``, so both paths give the same records and reasons (tests/…/test_squid.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl

from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    EMPTY,
    HOST_PATTERN,
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

    def parse_frame(self, lines: list[str]) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
        return _squid_frame(self, lines)


def _squid_frame(
    parser: SquidNativeParser, lines: list[str]
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    raw = pl.Series("line", lines, dtype=pl.String)
    parts = (
        pl.DataFrame({"line": raw})
        .with_row_index("i")
        # Stripped first: str.split() ignores whitespace at the ends, so a trailing blank is no field.
        .with_columns(
            pl.col("line")
            .str.strip_chars(" \t")
            .str.replace_all(r"[ \t]+", " ")
            .str.split_exact(" ", 10)
            .alias("f")
        )
        .unnest("f")
    )
    method, url, hier = pl.col("field_5"), pl.col("field_6"), pl.col("field_8")
    peer = hier.str.splitn("/", 2).struct.field("field_1")  # all after the first "/", as parse_line takes it
    frame = parts.select(
        "i",
        pl.col("field_0").cast(pl.Float64, strict=False).alias("ts"),
        pl.col("field_2").alias("source_ip"),
        pl.col("field_7").alias("user"),
        pl.when(method == "CONNECT").then(None).otherwise(url).alias("dest_url"),
        url.str.extract(HOST_PATTERN, 1).str.to_lowercase().str.strip_chars_end(".").alias("dest_host"),
        pl.when(peer.str.contains(_IP_PATTERN)).then(peer).otherwise(None).alias("dest_ip"),
        pl.when(pl.col("field_4").str.contains(r"^[0-9]{1,18}$"))
        .then(pl.col("field_4").cast(pl.Int64, strict=False))
        .otherwise(None)
        .alias("bytes_down"),
        pl.col("field_3")
        .str.split_exact("/", 1)
        .struct.field("field_0")
        .str.contains("DENIED")
        .alias("blocked"),
        (
            pl.col("line").str.contains(r"^[\x20-\x7e\t]*$")  # ASCII: both paths split it alike
            & pl.col("field_0").str.contains(r"^[0-9]+(?:\.[0-9]+)?$")
            & pl.col("field_9").is_not_null()
            & pl.col("field_3").str.contains(r"^[^/]+/")
            & (url != "-")
            & pl.col("field_2").ne("-")
            & pl.col("field_7").is_not_null()
            & hier.str.contains("/")
        ).alias("regular"),
    )
    frame = frame.with_columns(
        (
            pl.col("regular")
            & pl.col("ts").is_between(0, 1e11, closed="left")
            & pl.col("dest_host").is_not_null()
            & (pl.col("dest_host") != "")
        )
        .fill_null(False)
        .alias("regular")
    )
    regular = frame.filter("regular")
    good = regular.select(
        (pl.col("ts") * 1_000_000).round(0).cast(pl.Int64).cast(pl.Datetime("us", "UTC")).alias("time"),
        "source_ip",
        pl.when(pl.col("user") == "-").then(None).otherwise(pl.col("user")).alias("user"),
        "dest_host",
        "dest_url",
        "dest_ip",
        pl.lit(None, pl.Int64).alias("bytes_up"),
        "bytes_down",
        pl.lit(None, pl.Int64).alias("bytes_total"),
        "blocked",
    )
    return with_irregular_lines(parser, lines, frame, good)
