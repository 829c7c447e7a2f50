"""Cisco ASA syslog (logging level 6): connection teardowns carry the traffic, denies the blocks.

* ``302014`` / ``302016`` Teardown TCP/UDP: a transaction with its total bytes (ASA does not split up/down).
* ``302013`` / ``302015`` Built: rejected as ``connection built`` — the same connection is counted once, at
  its teardown, where its bytes are known.
* ``106023`` / ``106001`` / ``106006`` / ``106007`` / ``106015`` Deny: a blocked transaction.
* ``304001`` Accessed URL: a transaction with its URL.

The first address of a teardown is usually the foreign end; the source is the side carrying the identity
firewall user, else the side whose port is not a well-known one. Timestamps without a year take the latest
year that does not put them in the future; without a zone they are UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from trustplane.core.clock import utcnow
from trustplane.discovery.parsers.base import (
    BLOCKED,
    EMPTY,
    LogParser,
    ParseOutcome,
    Rejection,
    TrafficRecord,
    finish,
    host_of,
    parse_time,
)

NOT_ASA = Rejection("not Cisco ASA", "no %ASA-level-id tag")
BUILT = Rejection("connection built", "counted once at its teardown")
UNSUPPORTED = Rejection("unsupported message id")
UNPARSED = Rejection("unrecognised message body")
NO_TIME = Rejection("no timestamp")

_HEAD = re.compile(
    r"^(?:<\d{1,3}>)?\s*"
    r"(?:(?P<ts>[A-Z][a-z]{2} {1,2}\d{1,2}(?: \d{4})? \d\d:\d\d:\d\d)(?: (?P<tz>[A-Z]{3,4}))?|"
    r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))?"
    r".*?%(?:ASA|FTD|FWSM|PIX)-(?P<level>\d)-(?P<id>\d{6}):? ?(?P<body>.*)$"
)
_ENDPOINT = r"(?P<{0}if>[^:\s]+):(?P<{0}>[^/\s]+)/(?P<{0}port>\d+)"
_USER = r"(?:\s?\((?P<{0}user>[^)]*)\))?"
_TEARDOWN = re.compile(
    r"Teardown (?P<proto>TCP|UDP) connection \d+ for "
    + _ENDPOINT.format("a") + r"(?: \([^)]*\))?" + _USER.format("a") + r"(?: (?P<alocal>\S+))?"
    + r" to " + _ENDPOINT.format("b") + r"(?: \([^)]*\))?" + _USER.format("b") + r"(?: (?P<blocal>[^\s]+))?"
    + r" duration (?P<duration>\S+) bytes (?P<bytes>\d+)"
)  # fmt: skip
_DENY = re.compile(
    r"Deny (?P<proto>\S+) src " + _ENDPOINT.format("a").replace("/(?P<aport>\\d+)", "(?:/(?P<aport>\\d+))?")
    + r"(?:\((?P<auser>[^)]*)\))?"
    + r" dst " + _ENDPOINT.format("b").replace("/(?P<bport>\\d+)", "(?:/(?P<bport>\\d+))?")
)  # fmt: skip
_DENY_INBOUND = re.compile(
    r"(?:Inbound )?\S+ (?:connection|access) denied from (?P<a>[^/\s]+)/(?P<aport>\d+)"
    r" to (?P<b>[^/\s]+)/(?P<bport>\d+)"
)
_URL = re.compile(r"(?P<a>\S+) Accessed URL (?P<b>[^:\s]+):(?P<url>\S+)")


def _year_for(month_day_time: str) -> datetime | None:
    now = utcnow()
    parsed = parse_time(f"{now.year} {month_day_time}", "%Y %b %d %H:%M:%S")
    if parsed is not None and parsed > now:
        parsed = parse_time(f"{now.year - 1} {month_day_time}", "%Y %b %d %H:%M:%S")
    return parsed


def asa_time(ts: str | None, iso: str | None) -> datetime | None:
    if iso:
        try:
            parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if not ts:
        return None
    ts = " ".join(ts.split())
    if len(ts.split(" ")) == 4:
        return parse_time(ts, "%b %d %Y %H:%M:%S")
    return _year_for(ts)


def _well_known(port: str | None) -> bool:
    return port is not None and port.isdigit() and int(port) < 1024


class CiscoAsaParser(LogParser):
    name = "cisco_asa"
    sources = (
        "CISCO_ASA",
        "CISCO_ASA_SYSLOG",
        "CISCO_ASA_FIREPOWER_SYSLOG",
        "CISCO_FWSM",
        "CISCO_FWSM_SYSLOG",
    )

    def parse_line(self, line: str) -> ParseOutcome:
        if not line.strip():
            return EMPTY
        head = _HEAD.match(line)
        if head is None:
            return NOT_ASA
        message_id, body = head.group("id"), head.group("body")
        if message_id in ("302013", "302015"):
            return BUILT
        time = asa_time(head.group("ts"), head.group("iso"))
        if time is None:
            return NO_TIME
        if message_id in ("302014", "302016"):
            m = _TEARDOWN.search(body)
            if m is None:
                return UNPARSED
            a_is_source = bool(m.group("auser")) or (
                not m.group("buser") and (_well_known(m.group("bport")) or not _well_known(m.group("aport")))
            )
            src, dst = ("a", "b") if a_is_source else ("b", "a")
            user = m.group(f"{src}user")
            record = TrafficRecord(
                time=time,
                source_ip=m.group(src),
                user=user.strip() if user and user.strip() else None,
                dest_ip=m.group(dst),
                bytes_total=int(m.group("bytes")) if len(m.group("bytes")) < 19 else None,
                extra={"message": message_id, "protocol": m.group("proto")},
            )
            _host_or_ip(record)
            return finish(record)
        if message_id in ("106023", "106001", "106006", "106007", "106015"):
            m = _DENY.search(body) or _DENY_INBOUND.search(body)
            if m is None:
                return UNPARSED
            groups = m.groupdict()
            record = TrafficRecord(
                time=time,
                source_ip=groups["a"],
                user=(groups.get("auser") or "").strip() or None,
                dest_ip=groups["b"],
                action=BLOCKED,
                extra={"message": message_id},
            )
            _host_or_ip(record)
            return finish(record)
        if message_id == "304001":
            m = _URL.search(body)
            if m is None:
                return UNPARSED
            url = m.group("url")
            record = TrafficRecord(
                time=time, source_ip=m.group("a"), dest_ip=m.group("b"), dest_url=url, dest_host=host_of(url),
                extra={"message": message_id},
            )  # fmt: skip
            _host_or_ip(record)
            return finish(record)
        return UNSUPPORTED


def _host_or_ip(record: TrafficRecord) -> None:
    """ASA names a host by its configured object name in place of an IP (``dmz:OCSP_Server/5678``)."""
    ip = record.dest_ip
    if ip and not (ip.replace(".", "").isdigit() or ":" in ip):
        record.dest_ip = None
        if record.dest_host is None:
            record.dest_host = ip.lower()
