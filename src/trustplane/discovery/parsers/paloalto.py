"""Palo Alto Networks PAN-OS syslog CSV: TRAFFIC and THREAT (including URL filtering) logs.

Fields are read by position (the list grows with PAN-OS versions, so extra fields are ignored). A syslog
header glued to the first field is stripped; quoted fields (URLs) may hold commas, so quoted lines go through
``csv``. Sent bytes are the upload, received the download. Times are the firewall's and are taken as UTC."""

from __future__ import annotations

import csv
import re

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
    host_of,
    is_blocking_action,
    parse_time,
    to_int,
)

NOT_PANOS = Rejection("not PAN-OS CSV", "no FUTURE_USE,receive-time start")
NOT_TRAFFIC = Rejection("not a traffic or threat log")

# Where the CSV record begins: ``<future-use>,YYYY/MM/DD HH:MM:SS,``, possibly after a syslog header.
_START = re.compile(r"(?:^|\s)([^\s,]*,\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2},)")

TYPE, GENERATED, SRC, DST, SRC_USER, APP, ACTION = 3, 6, 7, 8, 12, 14, 30
BYTES, BYTES_SENT, BYTES_RECEIVED, CATEGORY_TRAFFIC = 31, 32, 33, 37
URL, CATEGORY_THREAT = 31, 36
_MIN = {"TRAFFIC": BYTES_RECEIVED + 1, "THREAT": URL + 1}


class PaloAltoParser(LogParser):
    name = "paloalto"
    sources = ("PALO_ALTO", "PALO_ALTO_SYSLOG")

    def parse_line(self, line: str) -> ParseOutcome:
        if not line.strip():
            return EMPTY
        m = _START.search(line)
        if m is None:
            return NOT_PANOS
        body = line[m.start(1) :]
        if '"' in body:
            try:
                row = next(csv.reader([body]))
            except (csv.Error, StopIteration) as exc:
                return Rejection("bad CSV", str(exc)[:200])
        else:
            row = body.split(",")
        if len(row) <= TYPE:
            return NOT_PANOS
        kind = row[TYPE]
        need = _MIN.get(kind)
        if need is None:
            return NOT_TRAFFIC
        if len(row) < need:
            return Rejection("too few fields", f"{len(row)} fields, a {kind} log has at least {need}")
        time = parse_time(row[GENERATED], "%Y/%m/%d %H:%M:%S") or parse_time(row[1], "%Y/%m/%d %H:%M:%S")
        if time is None:
            return NO_TIME
        record = TrafficRecord(
            time=time,
            source_ip=empty_to_none(row[SRC]),
            user=empty_to_none(row[SRC_USER]),
            dest_ip=empty_to_none(row[DST]),
            action=BLOCKED if is_blocking_action(row[ACTION]) else ALLOWED,
            extra={"app": row[APP], "type": kind, "subtype": row[4]},
        )
        if kind == "TRAFFIC":
            record.bytes_total = to_int(row[BYTES])
            record.bytes_up = to_int(row[BYTES_SENT])
            record.bytes_down = to_int(row[BYTES_RECEIVED])
            if len(row) > CATEGORY_TRAFFIC and row[CATEGORY_TRAFFIC]:
                record.extra["category"] = row[CATEGORY_TRAFFIC]
        else:
            url = empty_to_none(row[URL])
            if url and row[4] == "url":
                record.dest_url = url
                record.dest_host = host_of(url)
            if row[ACTION] == "block-url":
                record.action = BLOCKED
        return finish(record)
