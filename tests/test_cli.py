"""The `trustplane` command: scriptable administration printing JSON, and `serve` on a bare data directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import TestServer, free_port


def cli(server: TestServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTPLANE_DATABASE_URL": server.database_url, "TRUSTPLANE_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "trustplane.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def cli_json(server: TestServer, *args: str) -> Any:
    result = cli(server, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_apps_create_prints_credentials_that_the_token_endpoint_accepts(server: TestServer) -> None:
    tenant = server.tenant()
    created = cli_json(
        server,
        "apps",
        "create",
        "--tenant",
        tenant.domain,
        "--name",
        "hr-sync",
        "--permission",
        "User.Read.All",
    )
    assert created["tenant_id"] == tenant.tenant_id
    assert created["permissions"] == ["User.Read.All"]
    token = httpx.post(
        f"{server.url}/{tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert httpx.get(f"{server.url}/v1.0/users", headers=headers).status_code == 200
    assert httpx.get(f"{server.url}/v1.0/groups", headers=headers).status_code == 403


def test_apps_create_refuses_an_unknown_permission(server: TestServer) -> None:
    tenant = server.tenant()
    result = cli(
        server, "apps", "create", "--tenant", tenant.tenant_id, "--name", "x", "--permission", "User.Raed.All"
    )
    assert result.returncode == 2
    assert "Unknown permission" in result.stderr


def test_api_token_works_as_token_and_bearer_until_revoked(server: TestServer) -> None:
    tenant = server.tenant()
    created = cli_json(
        server,
        "tokens",
        "create",
        "--tenant",
        tenant.domain,
        "--name",
        "mcas",
        "--permission",
        "User.Read.All",
    )
    for scheme in ("Token", "Bearer"):
        response = httpx.get(
            f"{server.url}/v1.0/users", headers={"Authorization": f"{scheme} {created['token']}"}
        )
        assert response.status_code == 200, response.text
    listed = cli_json(server, "tokens", "list", "--tenant", tenant.domain)
    assert [t["name"] for t in listed] == ["mcas"]
    assert "token" not in listed[0]
    assert cli(server, "tokens", "revoke", created["id"], "--tenant", tenant.domain).returncode == 0
    after = httpx.get(f"{server.url}/v1.0/users", headers={"Authorization": f"Token {created['token']}"})
    assert after.status_code == 401


def test_token_command_issues_a_token_the_server_accepts(server: TestServer) -> None:
    tenant = server.tenant()
    issued = cli_json(
        server,
        "token",
        "--tenant",
        tenant.tenant_id,
        "--client-id",
        tenant.client_id,
        "--client-secret",
        tenant.client_secret,
        "--url",
        server.url,
    )
    response = httpx.get(
        f"{server.url}/v1.0/users", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert response.status_code == 200


def test_serve_on_a_bare_data_dir_bootstraps_and_prints_the_admin_secret_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "TRUSTPLANE_DATA_DIR": str(data_dir), "TRUSTPLANE_LOG_LEVEL": "warning"}
    env.pop("TRUSTPLANE_DATABASE_URL", None)

    def start() -> tuple[subprocess.Popen[str], int]:
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trustplane.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--demo",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return proc, port
            except httpx.HTTPError:
                time.sleep(0.2)
        proc.kill()
        raise AssertionError("server did not come up")

    def stop(proc: subprocess.Popen[str]) -> str:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        return out

    proc, port = start()
    try:
        banner_wait = time.time() + 5
        while time.time() < banner_wait and not (data_dir / "trustplane.db").exists():
            time.sleep(0.1)
    finally:
        first = stop(proc)
    assert (data_dir / "trustplane.db").exists()
    secret = re.search(r"client secret:\s+(\S+)", first)
    client_id = re.search(r"client id:\s+(\S+)", first)
    tenant_id = re.search(r"tenant id:\s+(\S+)", first)
    assert secret and client_id and tenant_id, first
    assert "seeded 300 demo users" in first

    proc, port = start()
    try:
        token = httpx.post(
            f"http://127.0.0.1:{port}/demo.trustplane.local/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id.group(1),
                "client_secret": secret.group(1),
                "scope": "https://graph.microsoft.com/.default",
            },
        ).json()["access_token"]
        count = httpx.get(
            f"http://127.0.0.1:{port}/v1.0/users/$count",
            headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"},
        )
    finally:
        second = stop(proc)
    assert count.text == "300"
    assert "client secret" not in second  # shown once, on first start only
    assert secret.group(1) not in (data_dir / "trustplane.db").read_bytes().decode("latin-1")
