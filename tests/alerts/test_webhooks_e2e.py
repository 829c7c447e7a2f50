"""Show point 3, end to end with real processes: a partner app confirms a user compromised through Graph
(``/v1.0/identityProtection/riskyUsers/confirmCompromised``) on a ``trustplane serve`` process; an alert is
raised and its webhook reaches a receiver on loopback (a real HTTP server) with a valid Standard Webhooks
signature. The receiver fails the first three tries and takes the fourth; the TrustPlane server process is
stopped after the first failed try and started again, and nothing is lost: every message arrives, on its
fourth try, with the same ``webhook-id`` each time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.server import create_pg_database, drop_pg_database, free_port
from trustplane.auth.keys import KeyStore
from trustplane.auth.service import create_api_token, create_application
from trustplane.bootstrap import ensure_ready
from trustplane.core.db import Database
from trustplane.core.events import SYSTEM
from trustplane.directory import service as directory

pytestmark = pytest.mark.slow  # two server process starts per backend (about 30-40 s each under load)
FAILURES_PER_MESSAGE = 3


class Receiver:
    """A webhook receiver on loopback that answers 500 to the first three tries of each message."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    tries = sum(
                        1 for h, _, _ in receiver.requests if h.get("webhook-id") == headers.get("webhook-id")
                    )
                    status = 500 if tries < FAILURES_PER_MESSAGE else 204
                    receiver.requests.append((headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/trustplane"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def tries(self) -> dict[str, list[tuple[dict[str, str], bytes, int]]]:
        with self.lock:
            by_id: dict[str, list[tuple[dict[str, str], bytes, int]]] = {}
            for request in self.requests:
                by_id.setdefault(request[0]["webhook-id"], []).append(request)
            return by_id

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgresql":
        url, name = create_pg_database()
        try:
            yield url
        finally:
            drop_pg_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'trustplane.db'}"


def prepare(url: str) -> dict[str, Any]:
    """A tenant with a partner app (Graph), an API token for the MCAS face and a user."""

    async def run() -> dict[str, Any]:
        db = Database(url)
        try:
            keys = KeyStore(3600)
            await ensure_ready(db, keys)
            async with db.session() as session:
                tenant = await directory.create_tenant(
                    session, keys, name="Webhooks", domain="hooks.example.com"
                )
                partner = await create_application(
                    session,
                    tenant.id,
                    SYSTEM,
                    name="Partner SOC",
                    permissions=["IdentityRiskyUser.ReadWrite.All"],
                )
                token = await create_api_token(
                    session,
                    tenant.id,
                    SYSTEM,
                    name="webhook admin",
                    permissions=["SecurityAlert.ReadWrite.All"],
                )
                user = await directory.create_user(
                    session,
                    tenant.id,
                    SYSTEM,
                    {
                        "user_principal_name": "dana@hooks.example.com",
                        "display_name": "Dana",
                        "mail_nickname": "dana",
                    },
                    password=None,
                )
            return {
                "tenant": tenant.id,
                "client_id": partner.client_id,
                "client_secret": partner.client_secret,
                "token": token.token,
                "user": user.id,
            }
        finally:
            await db.dispose()

    return asyncio.run(run())


class ServerProcess:
    """``trustplane serve`` in its own process (its in-process worker runs the jobs)."""

    def __init__(self, url: str, data_dir: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "TRUSTPLANE_DATABASE_URL": url,
            "TRUSTPLANE_DATA_DIR": str(data_dir),
            "TRUSTPLANE_JOB_POLL_SECONDS": "0.05",
            "TRUSTPLANE_LOG_LEVEL": "warning",
            "TRUSTPLANE_WEBHOOK_RETRY_SECONDS": "1,1,1,1",
            # The receiver runs on loopback, which webhooks may reach only when the operator allows it.
            "TRUSTPLANE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        }
        self.log = (data_dir / f"serve-{time.time_ns()}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trustplane.cli", "serve", "--port", str(port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("trustplane serve did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(what)


def test_partner_confirmation_reaches_a_webhook_on_the_fourth_try_across_a_restart(
    database: str, receiver: Receiver, tmp_path: Path
) -> None:
    ids = prepare(database)
    port = free_port()
    first = ServerProcess(database, tmp_path, port)
    try:
        mcas = {"Authorization": f"Token {ids['token']}"}
        created = httpx.post(
            f"{first.url}/api/v1/webhooks/",
            json={"url": receiver.url, "eventTypes": ["alert.created"], "description": "SOC"},
            headers=mcas,
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_")
        grant = httpx.post(
            f"{first.url}/{ids['tenant']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": ids["client_id"],
                "client_secret": ids["client_secret"],
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        graph = {"Authorization": f"Bearer {grant.json()['access_token']}"}
        confirmed = httpx.post(
            f"{first.url}/v1.0/identityProtection/riskyUsers/confirmCompromised",
            json={"userIds": [ids["user"]]},
            headers=graph,
        )
        assert confirmed.status_code == 204, confirmed.text
        # the first try of each message fails; then the server process goes away
        wait_for(lambda: len(receiver.tries()) == 2, 30, "the alerts' first tries did not arrive")
    finally:
        first.stop()
    tries_before_restart = len(receiver.requests)
    assert tries_before_restart == 2
    time.sleep(1.5)  # the retries fall due while no server runs
    assert len(receiver.requests) == tries_before_restart

    second = ServerProcess(database, tmp_path, port)
    try:
        wait_for(
            lambda: all(len(t) == FAILURES_PER_MESSAGE + 1 for t in receiver.tries().values()),
            60,
            "the messages were not delivered on their fourth try",
        )
        time.sleep(1.5)  # nothing more arrives after the success
        log = httpx.get(f"{second.url}/api/v1/webhooks/{hook['id']}/deliveries/", headers=mcas).json()["data"]
        alerts = httpx.post(f"{second.url}/api/v1/alerts/", json={}, headers=mcas).json()["data"]
    finally:
        second.stop()

    by_id = receiver.tries()
    assert len(by_id) == 2
    verifier = Webhook(hook["secret"])
    titles = set()
    for message_id, tries in by_id.items():
        assert [status for _, _, status in tries] == [500, 500, 500, 204]
        for headers, body, _ in tries:
            payload = verifier.verify(body, headers)  # raises unless the signature is valid
            assert headers["webhook-id"] == message_id
            assert payload["type"] == "alert.created"
        titles.add(payload["data"]["title"])
        account = next(e for e in payload["data"]["entities"] if e["type"] == "account")
        assert account["pa"] == "dana@hooks.example.com"
    assert titles == {"User confirmed compromised", "Risky user"}
    headers, body, _ = by_id[next(iter(by_id))][-1]
    forged = body.replace(b"dana@", b"mallory@")
    assert forged != body
    with pytest.raises(WebhookVerificationError):  # a forged body does not verify
        verifier.verify(forged, headers)
    assert sorted(d["status"] for d in log) == ["delivered", "delivered"]
    assert all(
        d["attempts"] == 4 and [t["statusCode"] for t in d["log"]] == [500, 500, 500, 204] for d in log
    )
    assert {a["title"] for a in alerts} == titles
    confirmed_alert = next(a for a in alerts if a["title"] == "User confirmed compromised")
    assert "Partner SOC" in confirmed_alert["description"] and confirmed_alert["severityValue"] == 2
    assert json.loads(by_id[next(iter(by_id))][0][1])["data"]["_id"] in {a["_id"] for a in alerts}
