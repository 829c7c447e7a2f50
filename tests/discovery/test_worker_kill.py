"""Show point 4: a worker killed with SIGKILL halfway through a large file (2M lines by default), then
restarted, produces the same report as an uninterrupted run: no line counted twice, none lost. Runs real
``trustplane worker`` processes against a server whose in-process worker is off."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import TestServer

pytestmark = pytest.mark.slow
LINES = int(os.environ.get("TRUSTPLANE_TEST_SIGKILL_LINES", "2000000"))
HOSTS = ["www.dropbox.com", "app.slack.com", "mega.nz", "github.com", "cdn.unlisted-share.net", "zoom.us"]
WRITE = "CloudApp-Discovery.ReadWrite.All"


@pytest.fixture(scope="module")
def quiet_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    srv = TestServer(backend, tmp_path_factory.mktemp(f"kill-{backend}"), run_worker_in_process=False)
    try:
        yield srv
    finally:
        srv.stop()


def make_log(path: Path, lines: int) -> None:
    with path.open("w") as out:
        for start in range(0, lines, 50_000):
            out.write(
                "".join(
                    f"{1793610000 + i // 10}.{i % 1000:03d} {i % 977:6d} 10.{i % 3}.{i % 251}.{i % 7 + 1} "
                    f"{'TCP_DENIED/403' if i % 29 == 0 else 'TCP_MISS/200'} {i % 9000} GET "
                    f"https://{HOSTS[i % len(HOSTS)]}/p/{i % 13} user{i % 401} "
                    f"HIER_DIRECT/198.51.100.{i % 200} -\n"
                    for i in range(start, min(lines, start + 50_000))
                )
            )


def start_worker(server: TestServer, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRUSTPLANE_DATABASE_URL": server.database_url,
        "TRUSTPLANE_JOB_LEASE_SECONDS": "8",
        "TRUSTPLANE_JOB_POLL_SECONDS": "0.1",
        "TRUSTPLANE_LOG_LEVEL": "warning",
        "TRUSTPLANE_DISCOVERY_SLICE_LINES": str(max(10_000, LINES // 8)),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "trustplane.cli", "worker", "--worker-id", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def submit(client: httpx.Client, path: Path, stream: str) -> str:
    url = client.get(
        "/api/v1/discovery/upload_url/", params={"filename": path.name, "source": "SQUID"}
    ).json()["url"]
    with path.open("rb") as body:
        assert httpx.put(url, content=body, timeout=120).status_code == 201
    done = client.post("/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": stream})
    assert done.status_code == 200, done.text
    return str(done.json()["uploadId"])


def upload_row(server: TestServer, upload_id: str) -> tuple[str, int, int]:
    status, offset, size = server.rows(
        'SELECT status, "offset", size FROM discovery_uploads WHERE id = :u', u=upload_id
    )[0]
    return str(status), int(offset), int(size)


def wait_done(server: TestServer, *upload_ids: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(upload_row(server, u)[0] == "done" for u in upload_ids):
            return
        time.sleep(0.2)
    raise AssertionError("uploads did not finish")


def report(server: TestServer, upload_id: str) -> dict[str, Any]:
    stream_id = server.scalar("SELECT stream_id FROM discovery_uploads WHERE id = :u", u=upload_id)
    apps = server.rows(
        "SELECT app_id, user_name, ip_address, day, transactions, blocked, bytes_up, bytes_down, traffic "
        "FROM discovery_aggregates WHERE stream_id = :s ORDER BY 1, 2, 3, 4",
        s=stream_id,
    )
    unmatched = server.rows(
        "SELECT destination, day, transactions, blocked, traffic FROM discovery_unmatched "
        "WHERE stream_id = :s ORDER BY 1, 2",
        s=stream_id,
    )
    stats = server.scalar("SELECT stats FROM discovery_uploads WHERE id = :u", u=upload_id)
    return {"apps": [tuple(r) for r in apps], "unmatched": [tuple(r) for r in unmatched], "stats": stats}


def test_worker_killed_halfway_resumes_without_losing_or_double_counting(
    quiet_server: TestServer, tmp_path: Path
) -> None:
    server = quiet_server
    path = tmp_path / "big-squid.log"
    make_log(path, LINES)
    tenant = server.tenant()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Token {tenant.api_token(WRITE)}"}, timeout=60
    ) as client:
        interrupted = submit(client, path, "interrupted")
        first = start_worker(server, "first")
        try:
            deadline = time.time() + 600
            while time.time() < deadline:
                status, offset, size = upload_row(server, interrupted)
                if offset >= size * 0.4 or status == "done":
                    break
                time.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            if first.poll() is None:  # the test failed before the kill: leave no worker behind
                first.kill()
            first.wait(timeout=30)
        status, offset_at_kill, size = upload_row(server, interrupted)
        assert status == "processing" and 0 < offset_at_kill < size, "the kill must land halfway"
        uninterrupted = submit(client, path, "uninterrupted")
    second = start_worker(server, "second")
    try:
        wait_done(server, interrupted, uninterrupted)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    killed, whole = report(server, interrupted), report(server, uninterrupted)
    assert whole["stats"] == killed["stats"]
    stats = whole["stats"] if isinstance(whole["stats"], dict) else json.loads(whole["stats"])
    assert stats["linesRead"] == LINES and stats["parsed"] == LINES
    assert killed["apps"] == whole["apps"] and killed["unmatched"] == whole["unmatched"]
    assert sum(r[4] for r in whole["apps"]) + sum(r[2] for r in whole["unmatched"]) == LINES
