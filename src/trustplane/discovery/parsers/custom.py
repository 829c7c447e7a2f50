"""Admin-defined log formats, as MCAS's custom log parser: delimited columns (with or without a header row)
or a regular expression with named groups, a mapping from TrafficRecord fields to column names (or 0-based
positions), and a time format (``strptime`` directives, or ``epoch`` / ``epoch_ms``).

Column names are case-sensitive, as MCAS's are. The fields mapped as required must be present on a line or
the line is rejected."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime
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
    from_epoch,
    host_of,
    is_blocking_action,
    parse_time,
    to_int,
)

MAPPABLE = (
    "time",
    "user",
    "source_ip",
    "dest_host",
    "dest_url",
    "dest_ip",
    "bytes_up",
    "bytes_down",
    "bytes_total",
    "action",
)
HEADER_ROW = Rejection("header row")
NO_MATCH = Rejection("no match", "the line does not match the parser's pattern")


class CustomFormatError(ValueError):
    """The admin's definition itself is wrong (bad regex, unknown field, missing time)."""


@dataclass(frozen=True)
class CustomFormat:
    kind: str  # "delimited" | "regex"
    fields: dict[str, str]  # TrafficRecord field -> column name, group name or 0-based position
    time_format: str = "%Y-%m-%d %H:%M:%S"
    delimiter: str = ","
    quote: str = '"'
    header: bool = True  # delimited: the first line names the columns
    pattern: str = ""
    required: tuple[str, ...] = ("time",)
    blocked_values: tuple[str, ...] = ()  # action values that mean blocked; default: deny/block/drop/…

    def validate(self) -> None:
        if self.kind not in ("delimited", "regex"):
            raise CustomFormatError("kind must be 'delimited' or 'regex'")
        unknown = sorted(set(self.fields) - set(MAPPABLE))
        if unknown:
            raise CustomFormatError(f"unknown fields {unknown}; mappable: {list(MAPPABLE)}")
        if "time" not in self.fields:
            raise CustomFormatError("the time field must be mapped")
        if not {"dest_host", "dest_url", "dest_ip"} & set(self.fields):
            raise CustomFormatError("one of dest_host, dest_url or dest_ip must be mapped")
        missing = sorted(set(self.required) - set(self.fields))
        if missing:
            raise CustomFormatError(f"required fields {missing} are not mapped")
        if self.kind == "delimited" and len(self.delimiter) != 1:
            raise CustomFormatError("the delimiter must be one character")
        if self.kind == "regex":
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise CustomFormatError(f"bad pattern: {exc}") from exc
            names = set(compiled.groupindex)
            absent = sorted(v for v in self.fields.values() if not v.isdigit() and v not in names)
            if absent:
                raise CustomFormatError(f"the pattern has no groups named {absent}")
        elif not self.header and any(not v.isdigit() for v in self.fields.values()):
            raise CustomFormatError("without a header row, columns are given by 0-based position")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomFormat:
        try:
            fmt = cls(
                kind=str(data["kind"]),
                fields={str(k): str(v) for k, v in dict(data["fields"]).items()},
                time_format=str(data.get("time_format", cls.time_format)),
                delimiter=str(data.get("delimiter", ",")),
                quote=str(data.get("quote", '"')),
                header=bool(data.get("header", True)),
                pattern=str(data.get("pattern", "")),
                required=tuple(str(x) for x in data.get("required", ("time",))),
                blocked_values=tuple(str(x) for x in data.get("blocked_values", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CustomFormatError(f"bad custom format: {exc!r}") from exc
        fmt.validate()
        return fmt


class CustomParser(LogParser):
    name = "custom"
    sources = ("CUSTOM_PARSER",)

    def __init__(self, fmt: CustomFormat) -> None:
        fmt.validate()
        self.fmt = fmt
        self._regex = re.compile(fmt.pattern) if fmt.kind == "regex" else None
        self._columns: dict[str, int] = {}
        self._blocked = {v.lower() for v in fmt.blocked_values}
        if fmt.kind == "delimited" and not fmt.header:
            self._columns = {name: int(col) for name, col in fmt.fields.items()}

    def state(self) -> dict[str, Any]:
        return {"columns": dict(self._columns)}

    def restore(self, state: dict[str, Any]) -> None:
        cols = state.get("columns")
        if isinstance(cols, dict) and cols:
            self._columns = {str(k): int(v) for k, v in cols.items()}

    def _time(self, value: str | None) -> datetime | None:
        if not value:
            return None
        value = value.strip()
        tf = self.fmt.time_format
        if tf in ("epoch", "epoch_ms"):
            return from_epoch(value)
        return parse_time(value, tf)

    def parse_line(self, line: str) -> ParseOutcome:
        if not line.strip():
            return EMPTY
        values: dict[str, str | None]
        if self._regex is not None:
            m = self._regex.search(line)
            if m is None:
                return NO_MATCH
            groups = m.groupdict()
            count = self._regex.groups
            values = {}
            for f, c in self.fmt.fields.items():
                values[f] = m.group(int(c)) if c.isdigit() and int(c) <= count else groups.get(c)
        else:
            try:
                row = next(csv.reader([line], delimiter=self.fmt.delimiter, quotechar=self.fmt.quote or None))
            except (csv.Error, StopIteration, TypeError) as exc:
                return Rejection("bad CSV", str(exc)[:200])
            if not self._columns:
                names = {name: i for i, name in enumerate(row)}
                missing = [c for c in self.fmt.fields.values() if c not in names and not c.isdigit()]
                if missing:
                    return Rejection("header row missing columns", f"missing {missing}")
                self._columns = {f: (int(c) if c.isdigit() else names[c]) for f, c in self.fmt.fields.items()}
                return HEADER_ROW
            values = {f: (row[i] if i < len(row) else None) for f, i in self._columns.items()}
        values = {f: empty_to_none(v) for f, v in values.items()}
        absent = [f for f in self.fmt.required if values.get(f) is None]
        if absent:
            return Rejection("required field missing", ", ".join(absent))
        time = self._time(values.get("time"))
        if time is None:
            return NO_TIME
        action = values.get("action")
        if self._blocked:
            blocked = action is not None and action.lower() in self._blocked
        else:
            blocked = is_blocking_action(action)
        url = values.get("dest_url")
        host = values.get("dest_host")
        record = TrafficRecord(
            time=time,
            source_ip=values.get("source_ip"),
            user=values.get("user"),
            dest_host=host_of(host) if host else (host_of(url) if url else None),
            dest_url=url,
            dest_ip=values.get("dest_ip"),
            bytes_up=to_int(values.get("bytes_up")),
            bytes_down=to_int(values.get("bytes_down")),
            bytes_total=to_int(values.get("bytes_total")),
            action=BLOCKED if blocked else ALLOWED,
        )
        return finish(record)
