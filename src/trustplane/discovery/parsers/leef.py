"""IBM QRadar Log Event Extended Format, 1.0 and 2.0.

``LEEF:1.0|Vendor|Product|Version|EventID|attrs`` with tab-separated ``key=value`` attributes;
``LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|attrs`` where the delimiter is one character or its hex
code (``0x09``, ``x5E``), tab when absent or empty. LEEF defines no escaping: a value may hold spaces and
``=``, so attributes split on the delimiter and then on the first ``=``. A syslog header may precede it."""

from __future__ import annotations

import re
from datetime import datetime

from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    EMPTY,
    NO_TIME,
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
)
from trustplane.discovery.parsers.cef import split_header

NOT_LEEF = Rejection("not LEEF", "no LEEF: header")
SHORT_HEADER = Rejection("truncated header", "LEEF needs 5 header fields")
BAD_VERSION = Rejection("unsupported LEEF version")

_HEX_DELIMITER = re.compile(r"^(?:0[xX]|[xX])([0-9A-Fa-f]{1,4})$")

# Java SimpleDateFormat tokens a devTimeFormat may use, longest first, as strptime directives.
_JAVA_TOKENS = (
    ("yyyy", "%Y"),
    ("MMM", "%b"),
    ("SSS", "%f"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("Z", "%z"),
    ("z", "%Z"),
    ("a", "%p"),
    ("hh", "%I"),
)


def java_to_strptime(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        for token, directive in _JAVA_TOKENS:
            if pattern.startswith(token, i):
                out.append(directive)
                i += len(token)
                break
        else:
            ch = pattern[i]
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def parse_delimiter(field: str) -> str | None:
    """The LEEF 2.0 delimiter field: one character, or a hex code. None if the field is not a delimiter."""
    if len(field) == 1:
        return field
    m = _HEX_DELIMITER.match(field)
    if m:
        code = int(m.group(1), 16)
        if 0 < code < 0x110000 and code not in (0x0A, 0x0D):
            return chr(code)
    return None


def split_attributes(text: str, delimiter: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(delimiter):
        eq = item.find("=")
        if eq > 0:
            key = item[:eq].strip()
            if key and key not in out:
                out[key] = item[eq + 1 :]
    return out


def leef_time(attrs: dict[str, str]) -> datetime | None:
    value = (attrs.get("devTime") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return from_epoch(value)
    fmt = attrs.get("devTimeFormat")
    if fmt:
        return parse_time(value, java_to_strptime(fmt.strip()))
    for default in ("%b %d %Y %H:%M:%S", "%b %d %Y %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"):
        parsed = parse_time(value, default)
        if parsed is not None:
            return parsed
    return None


class LeefParser(LogParser):
    name = "leef"
    sources = (
        "GENERIC_LEEF",
        "GENERIC_LEEF_SYSLOG",
        "FORCEPOINT_LEEF_SYSLOG",
        "PALO_ALTO_LEEF",
        "PALO_ALTO_LEEF_SYSLOG",
    )

    def parse_line(self, line: str) -> ParseOutcome:
        if not line.strip():
            return EMPTY
        at = line.find("LEEF:")
        if at < 0:
            return NOT_LEEF
        split = split_header(line[at + 5 :], 5)
        if split is None:
            return SHORT_HEADER
        header, rest = split
        version = header[0].strip()
        delimiter = "\t"
        if version.startswith("2"):
            bar = rest.find("|")
            if bar >= 0:
                declared = parse_delimiter(rest[:bar])
                if declared is not None:
                    delimiter, rest = declared, rest[bar + 1 :]
                elif bar == 0:
                    rest = rest[1:]  # an empty delimiter field: tab
        elif not version.startswith("1"):
            return BAD_VERSION
        attrs = split_attributes(rest, delimiter)
        time = leef_time(attrs)
        if time is None:
            return NO_TIME
        g = attrs.get
        url = empty_to_none(g("url") or g("request"))
        host = empty_to_none(g("dhost") or g("dstHost") or g("host"))
        up = to_int(g("srcBytes") or g("bytesOut") or g("out"))
        down = to_int(g("dstBytes") or g("bytesIn") or g("in"))
        total = to_int(g("totalBytes"))
        record = TrafficRecord(
            time=time,
            source_ip=empty_to_none(g("src")),
            user=empty_to_none(g("usrName") or g("suser") or g("user")),
            dest_host=host.lower() if host else None,
            dest_url=url,
            dest_ip=empty_to_none(g("dst")),
            bytes_up=up,
            bytes_down=down,
            bytes_total=total,
            action=BLOCKED if is_blocking_action(g("action") or g("act")) else ALLOWED,
            extra={"vendor": header[1], "product": header[2], "event": header[4]},
        )
        return finish(record)
