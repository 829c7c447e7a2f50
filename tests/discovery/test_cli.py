"""``trustplane discovery upload`` and ``tag`` against a server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import TenantHandle, TestServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WRITE = "CloudApp-Discovery.ReadWrite.All"


def discovery(server: TestServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTPLANE_URL": server.url, "TRUSTPLANE_API_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "trustplane.cli", "discovery", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upload_runs_the_three_stages_and_reports_the_result(
    server: TestServer, tenant: TenantHandle
) -> None:
    token = tenant.api_token(WRITE)
    result = discovery(
        server, token, "upload", str(FIXTURES / "squid.log"), "--source", "SQUID", "--stream", "cli", "--json"
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "done"
    assert (status["result"]["linesRead"], status["result"]["rejected"]) == (6, 1)


def test_upload_with_an_unknown_source_fails_with_the_servers_reason(
    server: TestServer, tenant: TenantHandle
) -> None:
    result = discovery(
        server,
        tenant.api_token(WRITE),
        "upload",
        str(FIXTURES / "squid.log"),
        "--source",
        "NOPE",
        "--stream",
        "s",
    )
    assert result.returncode == 1
    assert "400" in result.stderr and "NOPE" in result.stderr


def test_tag_sets_the_status_and_custom_tags(server: TestServer, tenant: TenantHandle) -> None:
    token = tenant.api_token(WRITE)
    result = discovery(
        server, token, "tag", "wetransfer", "--status", "unsanctioned", "--tag", "dlp", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tags"] == ["Unsanctioned", "dlp"]
    cleared = discovery(server, token, "tag", "wetransfer", "--status", "none", "--json")
    assert json.loads(cleared.stdout)["tags"] == ["dlp"]
