"""The log collector (``trustplane collector``): a syslog receiver that feeds one data source continuously
into a continuous report, as MCAS's log collector does. It listens on UDP and / or TCP, takes RFC 5424 and RFC
3164 messages (TCP framed by octet counting or by newline, RFC 6587), spools each message as one log line on
disk, and every ``batch_lines`` lines or ``batch_seconds`` seconds hands the spooled batch to the server
through the same three-stage MCAS upload any client uses (``upload_url`` → ``PUT`` → ``done_upload`` into the
named report), so batches take the processing pipeline of uploaded files: the same parsers, aggregates and
resumable jobs. It needs only an API token with ``CloudApp-Discovery.ReadWrite.All`` and can run at the
network edge.

A line is what the parsers expect of syslog-forwarded logs: for RFC 5424 the MSG part (the header and
structured data removed, a UTF-8 BOM dropped); for RFC 3164 the message without its ``<PRI>`` (the parsers
skip a BSD syslog timestamp and host, as they do in forwarded files). Line breaks inside a message become
spaces. A batch file that is not yet accepted by the server stays in the spool directory and is sent again
(also after a restart), so a server outage loses nothing the collector received."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import structlog

log = structlog.get_logger("trustplane.discovery.collector")

MAX_MESSAGE_BYTES = 64 * 1024  # the parsers' longest line
_PRI = re.compile(rb"^<(\d{1,3})>")
# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]
_RFC5424 = re.compile(rb"^<\d{1,3}>[1-9]\d{0,2} (\S+) (\S+) (\S+) (\S+) (\S+) ")
_SD_ELEMENT = re.compile(rb'\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\]')


def message_line(raw: bytes) -> str | None:
    """One syslog message as one log line (None for an empty message)."""
    raw = raw.rstrip(b"\r\n\x00")
    m = _RFC5424.match(raw)
    if m is not None:
        rest = raw[m.end() :]
        if rest.startswith(b"-"):
            rest = rest[1:]
        else:
            while (sd := _SD_ELEMENT.match(rest)) is not None:
                rest = rest[sd.end() :]
        msg = rest[1:] if rest.startswith(b" ") else rest
        if msg.startswith(b"\xef\xbb\xbf"):
            msg = msg[3:]
    else:
        pri = _PRI.match(raw)
        msg = raw[pri.end() :] if pri is not None else raw
    text = msg.decode("utf-8", "replace").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text if text.strip() else None


class TcpFramer:
    """RFC 6587 framing of one TCP connection, chosen by its first byte as senders keep one method per
    connection: a digit means octet counting (``LEN SP MSG``), anything else non-transparent framing (a
    message ends at LF). A message longer than the limit is skipped and counted."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._octet_counting: bool | None = None
        self._skip = 0  # bytes of an oversized message still to pass over
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer.extend(data)
        out: list[bytes] = []
        while True:
            if self._skip:
                n = min(self._skip, len(self._buffer))
                del self._buffer[:n]
                self._skip -= n
                if self._skip:
                    break
            if not self._buffer:
                break
            if self._octet_counting is None:
                self._octet_counting = self._buffer[:1].isdigit()
            if self._octet_counting:
                if not self._counted(out):
                    break
            elif not self._delimited(out):
                break
        return out

    def _counted(self, out: list[bytes]) -> bool:
        space = self._buffer.find(b" ", 0, 11)
        if space < 0:
            if len(self._buffer) >= 11 or not bytes(self._buffer).isdigit():
                self._buffer.clear()  # not a length: the stream is garbled; drop what is buffered
                self.dropped += 1
            return False
        length_text = bytes(self._buffer[:space])
        if not length_text.isdigit():
            del self._buffer[: space + 1]
            self.dropped += 1
            return True
        length = int(length_text)
        if length > MAX_MESSAGE_BYTES:
            del self._buffer[: space + 1]
            self._skip = length
            self.dropped += 1
            return True
        end = space + 1 + length
        if len(self._buffer) < end:
            return False
        out.append(bytes(self._buffer[space + 1 : end]))
        del self._buffer[:end]
        return True

    def _delimited(self, out: list[bytes]) -> bool:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                self._buffer.clear()
                self.dropped += 1
            return False
        frame = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if frame.strip():
            out.append(frame)
        return True

    def close(self) -> list[bytes]:
        """What is left when the peer closes: a last newline-framed message without its LF."""
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        return [rest] if rest and not self._octet_counting else []


Uploader = Callable[[Path], Awaitable[None]]


@dataclass
class Spool:
    """Lines on disk in batch files: ``current.log`` fills; a full batch is renamed ``batch-<ns>.log`` and
    waits there until the uploader has handed it to the server."""

    directory: Path
    batch_lines: int
    batch_seconds: float
    lines: int = 0
    started: float = field(default_factory=time.monotonic)
    _handle: IO[str] | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        current = self.directory / "current.log"
        if current.exists() and current.stat().st_size:  # a batch cut short by a restart: send it too
            current.rename(self._batch_name())

    def _batch_name(self) -> Path:
        return self.directory / f"batch-{time.time_ns()}.log"

    def add(self, line: str) -> None:
        if self._handle is None:
            self._handle = (self.directory / "current.log").open("a", encoding="utf-8")
            self.started = time.monotonic()
        self._handle.write(line + "\n")
        self.lines += 1

    def due(self) -> bool:
        if self.lines == 0:
            return False
        return self.lines >= self.batch_lines or time.monotonic() - self.started >= self.batch_seconds

    def cut(self) -> Path | None:
        """Close the current batch and return it (None when it is empty)."""
        if self._handle is None or self.lines == 0:
            return None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        self.lines = 0
        path = self._batch_name()
        (self.directory / "current.log").rename(path)
        return path

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("batch-*.log"))


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


class McasUploader:
    """Hands a batch file to the server through the MCAS upload API, into a continuous report."""

    def __init__(
        self, url: str, token: str, *, source: str, stream: str, anonymize_users: bool | None
    ) -> None:
        self.client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"Authorization": f"Token {token}"}, timeout=120
        )
        self.source, self.stream, self.anonymize_users = source, stream, anonymize_users

    async def __call__(self, path: Path) -> None:
        initiated = await self.client.get(
            "/api/v1/discovery/upload_url/", params={"filename": path.name, "source": self.source}
        )
        initiated.raise_for_status()
        url = initiated.json()["url"]
        # The signed URL is the credential: sent without the token, streamed from the batch file.
        async with httpx.AsyncClient(timeout=120) as plain:
            put = await plain.put(url, content=_chunks(path), headers={"x-ms-blob-type": "BlockBlob"})
        put.raise_for_status()
        done_body: dict[str, object] = {"uploadUrl": url, "inputStreamName": self.stream}
        if self.anonymize_users is not None:
            done_body["anonymizeUsers"] = self.anonymize_users
        done = await self.client.post("/api/v1/discovery/done_upload/", json=done_body)
        if done.status_code == 400:  # refused for good (e.g. the report's setting): keep, say why
            raise PermanentUploadError(done.json().get("detail", done.text))
        done.raise_for_status()

    async def aclose(self) -> None:
        await self.client.aclose()


class PermanentUploadError(Exception):
    """The server refused a batch in a way a retry will not change."""


@dataclass
class CollectorStats:
    received: int = 0
    dropped: int = 0
    batches_sent: int = 0
    upload_failures: int = 0


class Collector:
    def __init__(self, spool: Spool, upload: Uploader, *, retry_seconds: float = 5.0) -> None:
        self.spool, self.upload, self.retry_seconds = spool, upload, retry_seconds
        self.stats = CollectorStats()
        self._wake = asyncio.Event()
        self._retry_at = 0.0

    def receive(self, raw: bytes) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.stats.dropped += 1
            return
        line = message_line(raw)
        if line is None:
            return
        self.spool.add(line)
        self.stats.received += 1
        if self.spool.lines >= self.spool.batch_lines:  # cut here: a batch never exceeds its size
            self.spool.cut()
            self._wake.set()

    async def flush_loop(self, stop: asyncio.Event) -> None:
        """Cut due batches and send every pending one, oldest first; a failed send is retried later."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(1.0, self.spool.batch_seconds))
            self._wake.clear()
            await self.flush(force=False)

    async def flush(self, *, force: bool) -> None:
        if force or self.spool.due():
            self.spool.cut()
        if time.monotonic() < self._retry_at and not force:
            return
        for path in self.spool.pending():
            try:
                await self.upload(path)
            except PermanentUploadError as exc:
                log.error("collector_batch_refused", batch=path.name, detail=str(exc))
                path.rename(path.with_suffix(".refused"))
                self.stats.upload_failures += 1
                continue
            except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                log.warning("collector_upload_failed", batch=path.name, error=str(exc))
                self.stats.upload_failures += 1
                self._retry_at = time.monotonic() + self.retry_seconds
                return
            path.unlink(missing_ok=True)
            self.stats.batches_sent += 1
            log.info("collector_batch_sent", batch=path.name)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # one datagram is one message (RFC 5426); a sender that packs several lines gets one record each
        for part in data.split(b"\n"):
            if part.strip():
                self.collector.receive(part)


async def _tcp_connection(
    collector: Collector, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    framer = TcpFramer()
    try:
        while data := await reader.read(65536):
            for frame in framer.feed(data):
                collector.receive(frame)
        for frame in framer.close():
            collector.receive(frame)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        collector.stats.dropped += framer.dropped
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port)


async def run(
    collector: Collector,
    *,
    udp: str | None,
    tcp: str | None,
    stop: asyncio.Event,
    ready: Callable[[dict[str, int]], None] | None = None,
) -> None:
    """Listen until ``stop``; then send what is spooled and return."""
    loop = asyncio.get_running_loop()
    ports: dict[str, int] = {}
    transport = None
    server = None
    if udp:
        host, port = _host_port(udp)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(collector), local_addr=(host, port))
        ports["udp"] = transport.get_extra_info("sockname")[1]
    if tcp:
        host, port = _host_port(tcp)
        server = await asyncio.start_server(lambda r, w: _tcp_connection(collector, r, w), host, port)
        ports["tcp"] = server.sockets[0].getsockname()[1]
    log.info("collector_listening", **ports)
    if ready is not None:
        ready(ports)
    flusher = asyncio.create_task(collector.flush_loop(stop))
    try:
        await stop.wait()
    finally:
        if transport is not None:
            transport.close()
        if server is not None:
            server.close()
        await flusher
        await collector.flush(force=True)  # what arrived before the listeners closed goes out too
