"""Fortinet FortiGate / FortiOS ``key=value`` logs (traffic and web filter).

Values are bare or double-quoted (quoted values may hold spaces and ``=``); a repeated key keeps its first
value; an unterminated quote runs to the end of the line. ``eventtime`` (s, ms, us or ns) is preferred over
``date`` + ``time`` (+ ``tz``). A syslog header before the first key is ignored."""

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

NO_PAIRS = Rejection("no key=value pairs")

_PAIR = re.compile(r'(?:^|(?<=\s))([A-Za-z_][\w-]*)=(?:"((?:[^"\\]|\\.)*)"|"(.*)$|(\S*))', re.DOTALL)


def parse_pairs(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _PAIR.finditer(line):
        key = m.group(1)
        if key in out:
            continue
        quoted, unterminated, bare = m.group(2), m.group(3), m.group(4)
        if quoted is not None:
            out[key] = quoted.replace('\\"', '"') if "\\" in quoted else quoted
        elif unterminated is not None:
            out[key] = unterminated
        else:
            out[key] = bare or ""
    return out


def _time(pairs: dict[str, str]) -> datetime | None:
    event = pairs.get("eventtime")
    if event and event.isdigit():
        parsed = from_epoch(event)
        if parsed is not None:
            return parsed
    date, clock = pairs.get("date"), pairs.get("time")
    if not date or not clock:
        return None
    tz = pairs.get("tz")
    if tz and (tz[0] in "+-") and tz[1:].isdigit():
        return parse_time(f"{date} {clock} {tz}", "%Y-%m-%d %H:%M:%S %z")
    return parse_time(f"{date} {clock}", "%Y-%m-%d %H:%M:%S")


class FortiGateParser(LogParser):
    name = "fortigate"
    sources = ("FORTIGATE", "FORTIGATE_SYSLOG", "FORTIOS_SYSLOG")

    def parse_line(self, line: str) -> ParseOutcome:
        if not line.strip():
            return EMPTY
        pairs = parse_pairs(line)
        if not pairs:
            return NO_PAIRS
        time = _time(pairs)
        if time is None:
            return NO_TIME
        g = pairs.get
        url = empty_to_none(g("url"))
        host = empty_to_none(g("hostname"))
        if url and host and url.startswith("/"):
            url = f"{g('service', 'http').lower() if g('service', '').lower() in ('http', 'https') else 'https'}://{host}{url}"
        blocked = is_blocking_action(g("action")) or is_blocking_action(g("utmaction"))
        record = TrafficRecord(
            time=time,
            source_ip=empty_to_none(g("srcip")),
            user=empty_to_none(g("user") or g("unauthuser") or g("srcuser")),
            dest_host=host.lower() if host else None,
            dest_url=url,
            dest_ip=empty_to_none(g("dstip")),
            bytes_up=to_int(g("sentbyte")),
            bytes_down=to_int(g("rcvdbyte")),
            action=BLOCKED if blocked else ALLOWED,
        )
        for key in ("app", "appcat", "type", "subtype", "service"):
            v = g(key)
            if v:
                record.extra[key] = v
        return finish(record)
