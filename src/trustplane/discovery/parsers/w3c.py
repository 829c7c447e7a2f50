"""W3C Extended Log File Format (IIS, MS ISA/TMG, Blue Coat ProxySG, Barracuda).

``#Fields:`` names the columns and may change anywhere in the file; the parser re-reads it (its state, kept
across a resumed job). Values are separated by runs of whitespace; Blue Coat double-quotes values holding
spaces. ``-`` is empty. Directive lines are rejected with the reason ``directive`` so every line is
counted."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

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
    to_int,
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

    def __init__(self) -> None:
        self.fields: list[str] = []
        self._index: dict[str, int] = {}

    def state(self) -> dict[str, Any]:
        return {"fields": list(self.fields)}

    def restore(self, state: dict[str, Any]) -> None:
        self._set_fields([str(f) for f in state.get("fields", [])])

    def _set_fields(self, fields: list[str]) -> None:
        self.fields = fields
        self._index = {}
        for i, name in enumerate(fields):
            self._index.setdefault(name, i)

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
