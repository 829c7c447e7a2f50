"""ArcSight Common Event Format: ``CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension``.

The header's ``|`` may be escaped ``\\|``; in the extension ``=`` is escaped ``\\=``, ``\\`` is ``\\\\`` and
line breaks are ``\\n`` / ``\\r``. A value runs until the next `` key=``. A syslog header may precede
``CEF:``."""

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
