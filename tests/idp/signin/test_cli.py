"""`trustplane signin policy` and `trustplane signin set-password`: an admin changes the passkey models and
smart lockout of a tenant and sets a user's password from the command line; the sign-in pages honour both,
and a bad AAGUID is refused with nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.idp.signin.support import ADMIN, Browser, make_user
from tests.support.server import TestServer

pytestmark = pytest.mark.slow  # each command is a new process (imports, migrations check): seconds apiece


def cli(server: TestServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTPLANE_DATABASE_URL": server.database_url, "TRUSTPLANE_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "trustplane.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_policy_changes_models_and_lockout_and_refuses_a_bad_aaguid(server: TestServer) -> None:
    tenant = server.tenant(*ADMIN)
    yubikey = "2fc0579f-8113-47ea-b116-bb5a8db9202a"
    changed = cli(
        server, "signin", "policy", "--tenant", tenant.domain, "--allow-aaguid", yubikey.upper(),
        "--lockout-threshold", "4", "--json",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "allowedAaguids": [yubikey],
        "lockoutThreshold": 4,
        "lockoutSeconds": 60,
    }
    bad = cli(server, "signin", "policy", "--tenant", tenant.domain, "--allow-aaguid", "not-a-guid")
    assert bad.returncode == 2 and "is not an AAGUID" in bad.stderr
    back = cli(server, "signin", "policy", "--tenant", tenant.domain, "--default-authenticators", "--json")
    assert (
        json.loads(back.stdout)["allowedAaguids"] is None and json.loads(back.stdout)["lockoutThreshold"] == 4
    )


def test_set_password_lets_the_user_sign_in_and_asks_for_a_change(server: TestServer) -> None:
    tenant = server.tenant(*ADMIN)
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "clipass")
    new = "Set-By-Admin-2026"
    result = cli(server, "signin", "set-password", user["userPrincipalName"], "--tenant", tenant.domain,
                 stdin=f"{new}\n{new}\n")  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Browser(tenant) as b:
        answer = b.sign_in(user["userPrincipalName"], new)
    assert answer.status_code == 303 and answer.headers["location"].endswith("/signin/password")
