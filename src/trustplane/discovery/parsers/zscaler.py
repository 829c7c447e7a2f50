"""Zscaler NSS web logs, as CSV or as JSON (one object a line; the parser tells them apart per line).

NSS feed formats are admin-defined from ``%s{field}`` tokens. The JSON form names its fields (flat, or under
``event`` as Cloud NSS sends it). The CSV form is read in the field order of ``NSS_WEB_CSV_FIELDS``, the order
of Zscaler's documented web-log sample; a feed in another order is a custom parser. ``time`` has no zone and
is taken as UTC; numbers may be quoted; ``None`` / ``NA`` / ``N/A`` are empty."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any

import orjson

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
    host_of,
    is_blocking_action,
    parse_time,
    to_int,
)

BAD_JSON = Rejection("bad JSON", "the line starts with { but is not a JSON object")
BAD_CSV = Rejection("bad CSV")

# Positions in the CSV feed: time, login, proto, eurl, action, appname, appclass, reqsize, respsize, …,
# cip (21), sip (22), reqmethod (23), respcode (24), ua (25).
NSS_WEB_CSV_FIELDS: dict[str, int] = {
    "time": 0,
    "login": 1,
    "proto": 2,
    "eurl": 3,
    "action": 4,
    "appname": 5,
    "appclass": 6,
    "reqsize": 7,
    "respsize": 8,
    "urlclass": 11,
    "urlsupercat": 12,
    "urlcat": 13,
    "dept": 20,
    "cip": 21,
    "sip": 22,
    "reqmethod": 23,
    "respcode": 24,
    "ua": 25,
}
_MIN_CSV_FIELDS = NSS_WEB_CSV_FIELDS["sip"] + 1
_NSS_TIME = "%a %b %d %H:%M:%S %Y"


def nss_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch(value)
    text = str(value).strip()
    if text.isdigit():
        return from_epoch(text)
    return parse_time(" ".join(text.split()), _NSS_TIME)


def _record(get: Any) -> ParseOutcome:
    time = nss_time(get("time")) or nss_time(get("epochtime"))
    if time is None:
        return NO_TIME
    url = empty_to_none(_str(get("eurl")) or _str(get("url")))
    host = empty_to_none(_str(get("hostname")) or _str(get("host")))
    record = TrafficRecord(
        time=time,
        source_ip=empty_to_none(_str(get("cip"))),
        user=empty_to_none(_str(get("login"))),
        dest_host=(host.lower() if host else None) or (host_of(url) if url else None),
        dest_url=url,
        dest_ip=empty_to_none(_str(get("sip"))),
        bytes_up=to_int(_str(get("reqsize"))),
        bytes_down=to_int(_str(get("respsize"))),
        action=BLOCKED if is_blocking_action(_str(get("action"))) else ALLOWED,
    )
    for key in ("appname", "appclass", "urlcat", "reqmethod", "respcode"):
        v = empty_to_none(_str(get(key)))
        if v is not None:
            record.extra[key] = v
    return finish(record)


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


class ZscalerParser(LogParser):
    name = "zscaler"
    sources = ("ZSCALER", "ZSCALER_SYSLOG", "ZSCALER_QRADAR_SYSLOG")

    def parse_line(self, line: str) -> ParseOutcome:
        text = line.strip()
        if not text:
            return EMPTY
        if text[0] == "{":
            return self._json(text)
        return self._csv(text)

    def _json(self, text: str) -> ParseOutcome:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return BAD_JSON
        if not isinstance(data, dict):
            return BAD_JSON
        event = data.get("event")
        if isinstance(event, dict):
            data = event
        return _record(data.get)

    def _csv(self, text: str) -> ParseOutcome:
        try:
            row = next(csv.reader([text]))
        except (csv.Error, StopIteration) as exc:
            return Rejection("bad CSV", str(exc)[:200])
        if len(row) < _MIN_CSV_FIELDS:
            return Rejection(
                "too few fields", f"{len(row)} fields, the NSS web feed has at least {_MIN_CSV_FIELDS}"
            )

        def get(name: str) -> str | None:
            i = NSS_WEB_CSV_FIELDS.get(name)
            return row[i] if i is not None and i < len(row) else None

        return _record(get)
