"""``trustplane collector``: syslog (RFC 5424 and RFC 3164; UDP, and TCP with octet-counting or newline
framing) received over loopback by the real CLI process, batched into uploads through the MCAS upload API of a
real server, processed into one continuous report; a batch the server could not take waits in the spool and
goes out after a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import TenantHandle, TestServer, free_port
from trustplane.discovery.collector import MAX_MESSAGE_BYTES, TcpFramer, message_line

WRITE = "CloudApp-Discovery.ReadWrite.All"
HOSTS = ["www.dropbox.com", "app.slack.com", "mega.nz", "github.com"]


# --- message and framing ------------------------------------------------------------------------------


def test_rfc5424_keeps_the_msg_without_header_structured_data_or_bom() -> None:
    sd = '[exampleSDID@32473 iut="3" eventSource="App\\]lication"][meta seq="1"]'
    assert message_line(f"<165>1 2026-11-23T06:00:00.003Z proxy squid 81 ID47 {sd} hello".encode()) == "hello"
    assert message_line(b"<134>1 2026-11-23T06:00:00Z gw cef - - - \xef\xbb\xbfCEF:0|A|B|1|2|n|3|x=1") == (
        "CEF:0|A|B|1|2|n|3|x=1"
    )
    assert message_line(b"<134>1 - - - - - -") is None


def test_rfc3164_drops_only_the_priority_and_folds_line_breaks() -> None:
    line = b"<134>Nov 23 06:00:00 proxy squid[81]: 1795413600.000 5 10.0.0.1 TCP_MISS/200 1 GET"
    assert (
        message_line(line) == "Nov 23 06:00:00 proxy squid[81]: 1795413600.000 5 10.0.0.1 TCP_MISS/200 1 GET"
    )
    assert message_line(b"<13>two\nlines\r\n") == "two lines"
    assert message_line(b"no priority at all") == "no priority at all"


def test_octet_counting_frames_split_anywhere_across_reads() -> None:
    messages = [b"<13>1 - - - - - - first", b"<13>second with\nnewline", b"<13>" + b"x" * 300]
    stream = b"".join(str(len(m)).encode() + b" " + m for m in messages)
    for cut in (1, 2, 3, 7, 50, len(stream)):
        framer = TcpFramer()
        got = [f for i in range(0, len(stream), cut) for f in framer.feed(stream[i : i + cut])]
        assert got == messages and framer.close() == []


def test_newline_framing_and_a_last_message_without_lf() -> None:
    framer = TcpFramer()
    assert framer.feed(b"<13>one\n<13>tw") == [b"<13>one"]
    assert framer.feed(b"o\n\n<13>three") == [b"<13>two"]
    assert framer.close() == [b"<13>three"]


def test_an_oversized_message_is_skipped_and_counted_not_buffered() -> None:
    framer = TcpFramer()
    big = MAX_MESSAGE_BYTES + 10
    out = framer.feed(f"{big} ".encode() + b"y" * 1000)
    out += framer.feed(b"y" * (big - 1000) + b"5 <13>a")
    assert out == [b"<13>a"] and framer.dropped == 1
    framer = TcpFramer()
    assert framer.feed(b"<13>" + b"z" * (MAX_MESSAGE_BYTES + 5)) == [] and framer.dropped == 1
    assert framer.feed(b"tail\n<13>b\n") == [b"tail", b"<13>b"]


# --- the real collector against a real server ---------------------------------------------------------


def squid_line(i: int) -> str:
    ts = int(time.time()) - 600 + i % 300
    return (
        f"{ts}.{i % 1000:03d} 7 10.0.{i % 3}.{i % 5 + 1} TCP_MISS/200 {100 + i} GET "
        f"https://{HOSTS[i % len(HOSTS)]}/p/{i} user{i % 7} HIER_DIRECT/198.51.100.{i % 9} -"
    )


class CollectorProcess:
    def __init__(self, url: str, token: str, spool: Path, *, stream: str, batch_lines: int) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trustplane.cli",
                "collector",
                "--source",
                "SQUID",
                "--stream",
                stream,
                "--udp",
                "127.0.0.1:0",
                "--tcp",
                "127.0.0.1:0",
                "--spool",
                str(spool),
                "--batch-lines",
                str(batch_lines),
                "--batch-seconds",
                "1",
                "--url",
                url,
                "--token",
                token,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "TRUSTPLANE_LOG_LEVEL": "warning"},
        )
        self.ports: dict[str, int] = {}
        assert self.proc.stderr is not None
        deadline = time.time() + 60
        while time.time() < deadline and not self.ports:
            line = self.proc.stderr.readline().decode()
            if not line and self.proc.poll() is not None:
                raise AssertionError("the collector exited before listening")
            if line.startswith(("udp=", "tcp=")):
                self.ports = {k: int(v) for k, v in (p.split("=") for p in line.split())}

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[list[CollectorProcess]]:
    started: list[CollectorProcess] = []
    yield started
    for proc in started:
        proc.kill()


def send_udp(port: int, messages: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for m in messages:
            s.sendto(m, ("127.0.0.1", port))
            time.sleep(0.001)  # loopback UDP: pace so the receiver's buffer is never the limit


def send_tcp(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)


def transactions(server: TestServer, tenant_id: str, stream: str) -> int:
    total = server.scalar(
        "SELECT COALESCE(SUM(a.transactions), 0) FROM discovery_aggregates a JOIN discovery_streams s "
        "ON s.id = a.stream_id WHERE a.tenant_id = :t AND s.name = :n AND s.is_snapshot = :f",
        t=tenant_id,
        n=stream,
        f=False,
    )
    return int(total)


def wait_for(server: TestServer, tenant_id: str, stream: str, expected: int, timeout: float = 90) -> int:
    deadline = time.time() + timeout
    seen = 0
    while time.time() < deadline:
        seen = transactions(server, tenant_id, stream)
        if seen >= expected:
            return seen
        time.sleep(0.3)
    return seen


def test_syslog_over_udp_and_tcp_feeds_one_continuous_report(
    server: TestServer, tenant: TenantHandle, tmp_path: Path, running: list[CollectorProcess]
) -> None:
    collector = CollectorProcess(
        server.url, tenant.api_token(WRITE), tmp_path / "spool", stream="edge proxy", batch_lines=40
    )
    running.append(collector)
    lines = [squid_line(i) for i in range(150)]
    # UDP, RFC 3164 (BSD): <PRI>TIMESTAMP HOST TAG: MSG
    send_udp(
        collector.ports["udp"], [f"<134>Nov 23 06:00:00 proxy squid[81]: {x}".encode() for x in lines[:60]]
    )
    # TCP, RFC 5424 with octet counting
    framed = [f"<134>1 2026-11-23T06:00:00Z proxy squid 81 - - {x}".encode() for x in lines[60:110]]
    send_tcp(collector.ports["tcp"], b"".join(str(len(m)).encode() + b" " + m for m in framed))
    # TCP, RFC 3164 with newline framing, the last message without its LF
    send_tcp(collector.ports["tcp"], "\n".join(f"<134>{x}" for x in lines[110:]).encode())
    assert wait_for(server, tenant.tenant_id, "edge proxy", 150) == 150
    report = collector.stop()
    assert "received=150" in report and "dropped=0" in report
    uploads = server.rows(
        "SELECT u.status, u.stats, s.is_snapshot FROM discovery_uploads u JOIN discovery_streams s "
        "ON s.id = u.stream_id WHERE u.tenant_id = :t",
        t=tenant.tenant_id,
    )
    assert len(uploads) >= 3, "150 lines in batches of at most 40 make several uploads"
    assert all(status == "done" and not snap for status, _, snap in uploads)
    assert transactions(server, tenant.tenant_id, "edge proxy") == 150  # no line counted twice
    assert not list((tmp_path / "spool").glob("batch-*"))


def test_a_batch_the_server_did_not_take_is_sent_after_a_restart(
    server: TestServer, tenant: TenantHandle, tmp_path: Path, running: list[CollectorProcess]
) -> None:
    token, spool = tenant.api_token(WRITE), tmp_path / "spool"
    down = CollectorProcess(
        f"http://127.0.0.1:{free_port()}", token, spool, stream="outage", batch_lines=1000
    )
    running.append(down)
    send_tcp(down.ports["tcp"], "".join(f"<134>{squid_line(i)}\n" for i in range(25)).encode())
    time.sleep(1.5)
    assert "received=25" in down.stop()
    assert len(list(spool.glob("batch-*.log"))) == 1  # kept, not lost
    up = CollectorProcess(server.url, token, spool, stream="outage", batch_lines=1000)
    running.append(up)
    assert wait_for(server, tenant.tenant_id, "outage", 25) == 25
    up.stop()
    assert not list(spool.glob("batch-*.log"))
