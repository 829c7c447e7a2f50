"""Squid native ``access.log``: ``%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt``.

Whitespace runs separate the fields (``%6tr`` is padded). HTTPS shows as ``CONNECT host:port``; ``-`` is
empty; a ``*_DENIED`` result code is a blocked request. Extra fields (``log_mime_hdrs``) are ignored."""

from __future__ import annotations

from datetime import UTC, datetime

from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    EMPTY,
    LogParser,
    ParseOutcome,
    Rejection,
    TrafficRecord,
    finish,
    host_of,
)

TOO_FEW = Rejection("too few fields", "Squid native needs 10 whitespace-separated fields")
BAD_TIME = Rejection("bad timestamp", "first field is not epoch seconds")
BAD_STATUS = Rejection("bad result code", "fourth field is not CODE/STATUS")


def _is_ip(value: str) -> bool:
    return bool(value) and (value.replace(".", "").isdigit() or ":" in value)


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
            bytes_down=int(size) if size.isdigit() and len(size) < 19 else None,
            action=BLOCKED if "DENIED" in result else ALLOWED,
            extra={"method": method, "status": code[slash + 1 :], "result": result},
        )
        if dest_host is None and peer and peer != "-" and not _is_ip(peer):
            record.dest_host = peer.lower()  # older Squid: DIRECT/hostname
        return finish(record)
