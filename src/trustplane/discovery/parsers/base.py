"""The parser framework: one record shape, one interface, one streaming loop for every log format.

A parser turns one text line into either a ``TrafficRecord`` or a ``Rejection`` with a short reason; it never
raises. ``parse_stream`` reads a byte stream line by line with a bounded line length, so memory stays flat
however large the file, and accounts for every line: ``parsed + rejected == lines_read``."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any, ClassVar

import polars as pl

from trustplane.discovery.parsers import native

ALLOWED = "allowed"
BLOCKED = "blocked"

# A line longer than this is rejected unread (the reader skips to the next newline): bounded memory.
MAX_LINE_BYTES = 64 * 1024
SAMPLES_PER_REASON = 5
SAMPLE_CHARS = 300


@dataclass(slots=True)
class TrafficRecord:
    """One transaction: a log line of usage between a source and a destination."""

    time: datetime
    source_ip: str | None = None
    user: str | None = None
    dest_host: str | None = None
    dest_url: str | None = None
    dest_ip: str | None = None
    bytes_up: int | None = None
    bytes_down: int | None = None
    bytes_total: int | None = None
    action: str = ALLOWED
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def traffic(self) -> int:
        if self.bytes_total is not None:
            return self.bytes_total
        return (self.bytes_up or 0) + (self.bytes_down or 0)


@dataclass(slots=True, frozen=True)
class Rejection:
    reason: str
    detail: str = ""


ParseOutcome = TrafficRecord | Rejection
# A batch's lines: a list (per-line reader, tests) or a polars column (block reader).
Lines = list[str] | pl.Series


class LogParser:
    """One log format. Subclasses set ``sources`` (MCAS source names) and implement ``parse_line``.

    A parser may keep state between lines (W3C ``#Fields``); ``state`` / ``restore`` let a resumed job carry
    it across a restart. ``parse_frame`` gives a batch as columns (``FRAME_SCHEMA``) for the aggregation;
    a vectorised format overrides it, the others build the frame from their records."""

    sources: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str] = ""

    def parse_line(self, line: str) -> ParseOutcome:
        raise NotImplementedError

    def parse_batch(self, lines: list[str]) -> list[ParseOutcome]:
        parse = self.parse_line
        return [parse(line) for line in lines]

    def parse_frame(
        self, lines: Lines, *, plain: bool = False
    ) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
        """``plain``: the caller checked that every line is printable ASCII (no control characters), so a
        vectorised parser may skip that check per line."""
        if isinstance(lines, pl.Series):
            lines = lines.to_list()
        records: list[TrafficRecord] = []
        rejections: list[tuple[int, Rejection]] = []
        for i, outcome in enumerate(self.parse_batch(lines)):
            if isinstance(outcome, TrafficRecord):
                records.append(outcome)
            else:
                rejections.append((i, outcome))
        return records_to_frame(records), rejections

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None

    def state_after(self, data: Any, start: int, end: int, state: dict[str, Any]) -> dict[str, Any] | None:
        """The state this parser is in after reading ``data[start:end]`` (whole lines; ``data`` is bytes or
        an mmap) from ``state``, found without parsing the lines' records — or None when only parsing them
        can tell: then a file is parsed in order by one process. A parser without state: ``{}``."""
        return {} if type(self).state is LogParser.state else None


@dataclass
class ParseStats:
    """Counts and a few samples of each reject reason: what a job result reports."""

    lines_read: int = 0
    parsed: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def reject(self, line_no: int, line: str, rejection: Rejection) -> None:
        self.rejected += 1
        self.reasons[rejection.reason] += 1
        bucket = self.samples.setdefault(rejection.reason, [])
        if len(bucket) < SAMPLES_PER_REASON:
            bucket.append({"line": line_no, "text": line[:SAMPLE_CHARS], "detail": rejection.detail})

    def add(self, part: ParseStats) -> None:
        """Count ``part``, the stats of the lines that follow these (its line numbers counted from 1): its
        samples go after these, up to the same limit per reason."""
        base = self.lines_read
        self.lines_read += part.lines_read
        self.parsed += part.parsed
        self.rejected += part.rejected
        self.reasons.update(part.reasons)
        for reason, samples in part.samples.items():
            bucket = self.samples.setdefault(reason, [])
            for sample in samples[: max(0, SAMPLES_PER_REASON - len(bucket))]:
                bucket.append({**sample, "line": sample["line"] + base})

    def to_dict(self) -> dict[str, Any]:
        return {
            "linesRead": self.lines_read,
            "parsed": self.parsed,
            "rejected": self.rejected,
            "rejectReasons": dict(self.reasons),
            "rejectSamples": self.samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParseStats:
        return cls(
            lines_read=int(data.get("linesRead", 0)),
            parsed=int(data.get("parsed", 0)),
            rejected=int(data.get("rejected", 0)),
            reasons=Counter(data.get("rejectReasons", {})),
            samples={k: list(v) for k, v in data.get("rejectSamples", {}).items()},
        )


@dataclass
class Batch:
    records: list[TrafficRecord]
    end_offset: int  # byte offset just past the batch's last line: where a resumed run starts
    lines: int
    frame: pl.DataFrame | None = None  # set instead of ``records`` when streaming columnar


FRAME_SCHEMA: dict[str, Any] = {
    "time": pl.Datetime("us", "UTC"),
    "source_ip": pl.String,
    "user": pl.String,
    "dest_host": pl.String,
    "dest_url": pl.String,
    "dest_ip": pl.String,
    "bytes_up": pl.Int64,
    "bytes_down": pl.Int64,
    "bytes_total": pl.Int64,
    "blocked": pl.Boolean,
}


def records_to_frame(records: list[TrafficRecord]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time": [r.time for r in records],
            "source_ip": [r.source_ip for r in records],
            "user": [r.user for r in records],
            "dest_host": [r.dest_host for r in records],
            "dest_url": [r.dest_url for r in records],
            "dest_ip": [r.dest_ip for r in records],
            "bytes_up": [r.bytes_up for r in records],
            "bytes_down": [r.bytes_down for r in records],
            "bytes_total": [r.bytes_total for r in records],
            "blocked": [r.action == BLOCKED for r in records],
        },
        schema=FRAME_SCHEMA,
    )


def with_irregular_lines(
    parser: LogParser, lines: Lines, frame: pl.DataFrame, good: pl.DataFrame
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    """A vectorised parse's result: ``good`` (the rows ``frame`` marks ``regular``, in FRAME_SCHEMA) plus
    every line the columnar rules did not cover, parsed one by one, so both paths decide each line alike."""
    rejections: list[tuple[int, Rejection]] = []
    odd = frame.filter(~pl.col("regular"))["i"].to_list()
    if odd:
        records: list[TrafficRecord] = []
        for i in odd:
            outcome = parser.parse_line(lines[i])
            if isinstance(outcome, TrafficRecord):
                records.append(outcome)
            else:
                rejections.append((i, outcome))
        if records:
            good = pl.concat([good, records_to_frame(records)], how="vertical")
    return good, rejections


TOO_LONG = Rejection("line too long", f"longer than {MAX_LINE_BYTES} bytes")


def read_lines(
    stream: IO[bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, str | None]]:
    """Yield ``(bytes consumed, text)`` per line; ``text`` is None for a line over the limit, which is
    skipped without being held in memory. Undecodable bytes become U+FFFD rather than failing the line."""
    readline = stream.readline
    while True:
        raw = readline(max_line_bytes + 1)
        if not raw:
            return
        size = len(raw)
        if size > max_line_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = readline(max_line_bytes)
                size += len(raw)
            yield size, None
            continue
        yield size, raw.decode("utf-8", "replace").rstrip("\r\n")


def read_blocks(
    stream: IO[bytes], *, block_bytes: int = 0, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(bytes consumed, block)`` where a block is whole lines (ending in a newline, or the file's
    last line); ``block`` is None for one line over the limit, skipped without being held in memory. At most
    about two blocks are held at once."""
    block_bytes = max(block_bytes or BLOCK_BYTES, max_line_bytes + 1)
    read = stream.read
    carry = b""
    while True:
        chunk = read(block_bytes)
        if not chunk:
            if carry:  # whole lines after a skipped one, or the last line (over the limit: told per line)
                yield len(carry), carry
            return
        buf = carry + chunk if carry else chunk
        cut = buf.rfind(b"\n") + 1
        if cut:
            yield cut, buf[:cut]
            carry = buf[cut:]
        else:
            carry = buf
        if len(carry) > max_line_bytes:  # the line in progress is over the limit: skip to its end
            size = len(carry)
            while True:
                chunk = read(block_bytes)
                if not chunk:
                    yield size, None
                    return
                nl = chunk.find(b"\n")
                if nl >= 0:
                    yield size + nl + 1, None
                    carry = chunk[nl + 1 :]
                    break
                size += len(chunk)


# Bytes read per block in the columnar path; a batch is at most one block (and ``batch_lines`` lines).
BLOCK_BYTES = 8 * 1024 * 1024


_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\n"


def block_lines(
    block: bytes, max_line_bytes: int = MAX_LINE_BYTES
) -> tuple[pl.Series, pl.Series, bool] | None:
    """A block's lines as a polars column, each line's size in bytes with its newline, and whether every
    line is printable ASCII — split natively (no Python step per line) — or None when the block needs the
    per-line reader: undecodable bytes or a line over the limit. The text equals ``read_lines``: the newline
    and any ``\\r`` before it removed."""
    if native.available():  # one pass in C: the lines as views into the block, no copy
        split = native.split_block(block, max_line_bytes)
        if split is None:
            return None
        if split is not False:
            return split[0], split[1], True
        plain = False
    else:
        plain = block.isascii() and not block.translate(None, _PRINTABLE)
    ends = block.endswith(b"\n")
    lines: pl.Series | None = None
    sizes: pl.Series | None = None
    if plain:  # polars' CSV reader as a line splitter: one column, no quoting, blank lines kept as nulls
        frame = pl.read_csv(
            io.BytesIO(block), has_header=False, separator="\x00", quote_char=None, infer_schema=False
        )
        if frame.width == 1:
            lines = frame.to_series().fill_null("").alias("line")
            sizes = _line_sizes(lines, ends)
            # No row holds a newline, so the rows are the block's lines exactly when their sizes add up to
            # the block's (a line dropped, merged or cut short would not): cheaper than counting newlines.
            if int(sizes.sum()) != len(block):
                lines = sizes = None
    if lines is None or sizes is None:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        lines = pl.Series("line", [text[:-1] if ends else text], dtype=pl.String).str.split("\n").explode()
        sizes = _line_sizes(lines, ends)
    if sizes.max() > max_line_bytes + 1 or (not ends and sizes[-1] > max_line_bytes):  # type: ignore[operator]
        return None
    if b"\r" in block:
        lines = lines.str.strip_chars_end("\r")
    return lines, sizes, plain


def _line_sizes(lines: pl.Series, ends: bool) -> pl.Series:
    """Each line's size in bytes with its newline (the last line has none unless the block ends in one)."""
    sizes = lines.str.len_bytes().cast(pl.Int64) + 1
    if not ends:
        sizes[-1] = sizes[-1] - 1
    return sizes


def parse_stream(
    stream: IO[bytes],
    parser: LogParser,
    stats: ParseStats,
    *,
    start_offset: int = 0,
    batch_lines: int = 8192,
    columnar: bool = False,
    block_bytes: int = 0,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Batch]:
    """Parse ``stream`` from ``start_offset`` in batches; ``stats`` is updated as each batch is yielded.
    Nothing but the current batch is held in memory. ``columnar`` yields each batch as a polars frame and
    reads the file in byte blocks split into lines by polars (``block_lines``), a block the per-line reader
    cannot be spared (undecodable bytes, an over-long line) going line by line; both read the same lines."""
    if start_offset:
        stream.seek(start_offset)
    offset = start_offset
    pending: list[str] = []

    def flush(end_offset: int, lines: Lines | None = None, plain: bool = False) -> Batch:
        if lines is None:
            lines = pending
        first_line = stats.lines_read + 1
        count = len(lines)
        if columnar:
            frame, rejections = _safe_frame(parser, lines, plain)
            for i, rejection in rejections:
                stats.reject(first_line + i, lines[i], rejection)
            stats.parsed += frame.height
            stats.lines_read += count
            batch = Batch(records=[], end_offset=end_offset, lines=count, frame=frame)
            pending.clear()
            return batch
        records: list[TrafficRecord] = []
        for i, outcome in enumerate(
            _safe_batch(parser, lines if isinstance(lines, list) else lines.to_list())
        ):
            if isinstance(outcome, TrafficRecord):
                records.append(outcome)
            else:
                stats.reject(first_line + i, lines[i], outcome)
        stats.parsed += len(records)
        stats.lines_read += count
        batch = Batch(records=records, end_offset=end_offset, lines=count)
        pending.clear()
        return batch

    def too_long(size: int) -> Batch:
        stats.lines_read += 1
        stats.reject(stats.lines_read, "", TOO_LONG)
        return Batch(records=[], end_offset=offset, lines=1, frame=records_to_frame([]) if columnar else None)

    def by_line(source: IO[bytes]) -> Iterator[Batch]:
        nonlocal offset
        for size, text in read_lines(source, max_line_bytes=max_line_bytes):
            if text is None:
                if pending:  # flush first so line numbers stay in order
                    yield flush(offset)
                offset += size
                yield too_long(size)
                continue
            offset += size
            pending.append(text)
            if len(pending) >= batch_lines:
                yield flush(offset)
        if pending:
            yield flush(offset)

    if not columnar:
        yield from by_line(stream)
        return
    for size, block in read_blocks(stream, block_bytes=block_bytes, max_line_bytes=max_line_bytes):
        if block is None:
            offset += size
            yield too_long(size)
            continue
        split = block_lines(block, max_line_bytes)
        if split is None:
            yield from by_line(io.BytesIO(block))
            continue
        lines, sizes, plain = split
        for start in range(0, len(lines), batch_lines):
            part = lines.slice(start, batch_lines)
            offset += int(sizes.slice(start, batch_lines).sum())
            yield flush(offset, part, plain)


def _safe_frame(
    parser: LogParser, lines: Lines, plain: bool = False
) -> tuple[pl.DataFrame, list[tuple[int, Rejection]]]:
    try:
        return parser.parse_frame(lines, plain=plain)
    except Exception:
        return LogParser.parse_frame(_PerLine(parser), lines)


class _PerLine(LogParser):
    """The per-line path of a parser whose vectorised path failed; it shares the parser's state."""

    def __init__(self, parser: LogParser) -> None:
        self.parser = parser

    def parse_line(self, line: str) -> ParseOutcome:
        return self.parser.parse_line(line)

    def parse_batch(self, lines: list[str]) -> list[ParseOutcome]:
        return _safe_batch(self.parser, lines)


def _safe_batch(parser: LogParser, lines: list[str]) -> list[ParseOutcome]:
    """A last safety net: a parser bug costs the batch's lines a reject each, never the upload. The fuzz
    tests call the parsers directly, so this net does not hide such bugs from them."""
    try:
        return parser.parse_batch(lines)
    except Exception:
        out: list[ParseOutcome] = []
        for line in lines:
            try:
                out.append(parser.parse_line(line))
            except Exception as exc:
                out.append(Rejection("parser error", repr(exc)[:200]))
        return out


# ---- helpers shared by the formats -------------------------------------------------------------------

_SYSLOG_PREFIX = re.compile(
    r"^(?:<\d{1,3}>)?"
    r"(?:"
    r"1 \S+ \S+ \S+ \S+ \S+ (?:-|(?:\[[^\]]*\])+) ?"  # RFC 5424: VERSION TS HOST APP PROCID MSGID SD
    r"|[A-Z][a-z]{2} {1,2}\d{1,2}(?: \d{4})? \d\d:\d\d:\d\d(?:\.\d+)? (?:\S+ )?"  # RFC 3164: TS HOST
    r"|\d{4}-\d\d-\d\dT\S+ (?:\S+ )?"  # ISO timestamp HOST
    r")?"
)


def strip_syslog_prefix(line: str) -> str:
    """Remove an RFC 3164 / RFC 5424 header (``<PRI>TIMESTAMP HOST``) in front of a message, if any."""
    if not line or not (line[0] == "<" or line[0].isalpha() or line[0].isdigit()):
        return line
    m = _SYSLOG_PREFIX.match(line)
    return line[m.end() :] if m else line


# A URL or ``host[:port][/path]``: optional scheme, optional user info (up to the last ``@``), then a
# bracketed IPv6 literal or a host name. The vectorised parsers use the same pattern (``HOST_PATTERN``).
_URL_HOST = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://)?(?:[^/?#\[]*@)?(?:\[([^\]/?#]*)\]?|([^:/?#\[\]@]*))"
)
HOST_PATTERN = r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://)?(?:[^/?#\[]*@)?([^:/?#\[\]@]*)"


def host_of(url: str) -> str | None:
    """The lower-cased host of a URL or ``host[:port][/path]``, without user info or port."""
    m = _URL_HOST.match(url)
    if m is None:
        return None
    host = m.group(1) if m.group(1) is not None else m.group(2)
    host = host.strip().rstrip(".").lower()
    return host or None


def empty_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or value in ("-", "None", "NA", "N/A", '""'):
        return None
    return value


def to_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip().strip('"')
    if value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def from_epoch(value: str | float | int) -> datetime | None:
    """Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    while number >= 1e11:  # past year 5138 as seconds: a finer unit
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


@lru_cache(maxsize=4096)
def parse_time(value: str, fmt: str) -> datetime | None:
    """``strptime`` cached per distinct string: log lines share their second, so most calls are hits.
    A naive result is taken as UTC."""
    try:
        parsed = datetime.strptime(value, fmt)
    except (ValueError, re.error, OverflowError):  # a format from the log itself may be malformed
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def is_blocking_action(value: str | None) -> bool:
    if not value:
        return False
    v = value.strip().strip('"').lower()
    return v.startswith(
        ("block", "deny", "denied", "drop", "reject", "reset", "prevent", "sinkhole")
    ) or v in (
        "blocked",
        "quarantine",
        "tcp_denied",
    )


def finish(record: TrafficRecord) -> ParseOutcome:
    """The rule every format shares: a transaction needs a destination."""
    if record.dest_host is None:
        if record.dest_url:
            record.dest_host = host_of(record.dest_url)
        if record.dest_host is None and record.dest_ip is None:
            return NO_DESTINATION
    return record


NO_DESTINATION = Rejection("no destination", "neither a destination host, URL nor IP")
NO_TIME = Rejection("no timestamp")
EMPTY = Rejection("empty line")
