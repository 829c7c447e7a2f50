"""``trustplane apps create-sso``: registers an app users sign in to, with exact redirect URIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.idp.oauth.support import Client, make_user, signed_in_browser, tokens
from tests.support.server import TenantHandle, TestServer
from trustplane.core.errors import BadRequest
from trustplane.idp.oauth.service import RegisteredClient, check_redirect_uri


def cli(server: TestServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTPLANE_DATABASE_URL": server.database_url, "TRUSTPLANE_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "trustplane.cli", "apps", "create-sso", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # a CLI process per call (imports and start-up: seconds on a loaded machine)
def test_create_sso_registers_a_public_client_that_signs_users_in(
    server: TestServer, tenant: TenantHandle
) -> None:
    uri = "http://127.0.0.1:8400/callback"
    result = cli(
        server, "--tenant", tenant.domain, "--name", "Team wiki", "--redirect-uri", uri, "--public",
        "--admin-consent", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["client_secret"] is None and created["redirect_uris"] == [uri]
    client = Client(tenant, RegisteredClient("", created["client_id"], None), uri)
    body = tokens(client, signed_in_browser(tenant, make_user(tenant)))
    assert body["id_token"] and body["refresh_token"]


@pytest.mark.slow
def test_create_sso_refuses_a_plain_http_redirect_uri_and_registers_nothing(
    server: TestServer, tenant: TenantHandle
) -> None:
    result = cli(
        server, "--tenant", tenant.domain, "--name", "Bad", "--redirect-uri", "http://app.example/cb"
    )
    assert result.returncode == 2 and "redirect URI" in result.stdout + result.stderr
    assert server.scalar("SELECT count(*) FROM applications WHERE display_name = 'Bad'") == 0


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example/cb",
        "https://app.example/cb#x",
        "https://user:pw@app.example/cb",
        "app.example/cb",
        "javascript:alert(1)",
        "https://app.example/c b",
    ],
)
def test_register_client_refuses_unsafe_redirect_uris(uri: str) -> None:
    with pytest.raises(BadRequest):
        check_redirect_uri(uri)
