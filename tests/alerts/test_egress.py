"""Webhook egress: internal addresses are refused unless the operator allows their network, the address that
was checked is the one connected to, and the receiver still sees the URL's own host name."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.server import TenantHandle, TestServer
from trustplane.alerts import egress, webhooks
from trustplane.alerts import service as alerts
from trustplane.alerts.models import WebhookDelivery


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
def test_internal_addresses_are_refused_by_default(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(egress.ALLOWED_NETWORKS_ENV, raising=False)
    with pytest.raises(egress.EgressRefused, match="not a public address"):
        asyncio.run(egress.resolve(url))


def test_literal_check_refuses_only_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(egress.ALLOWED_NETWORKS_ENV, raising=False)
    with pytest.raises(egress.EgressRefused):
        egress.check_literal("https://10.0.0.8/hook")
    egress.check_literal("https://9.9.9.9/hook")
    egress.check_literal("https://hooks.example.com/x")  # a name is checked when it is resolved, at delivery


def test_public_address_passes_and_is_what_is_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(egress.ALLOWED_NETWORKS_ENV, raising=False)
    target = asyncio.run(egress.resolve("https://9.9.9.9:8443/in?x=1"))
    assert target.url == "https://9.9.9.9:8443/in?x=1"
    assert target.host_header == "9.9.9.9:8443" and target.tls_name is None


def test_unresolvable_host_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(egress.ALLOWED_NETWORKS_ENV, raising=False)
    with pytest.raises(egress.EgressRefused, match="does not resolve"):
        asyncio.run(egress.resolve("http://no-such-host.invalid/x"))


def test_allowed_network_reaches_a_loopback_receiver_by_name(
    receiver: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hosts = receiver
    monkeypatch.setenv(egress.ALLOWED_NETWORKS_ENV, "10.0.0.0/8, 127.0.0.0/8, ::1/128")
    target = asyncio.run(egress.resolve(f"http://localhost:{port}/hook"))
    if target.url != f"http://127.0.0.1:{port}/hook":
        pytest.skip("localhost resolves to ::1 first here; the receiver listens on 127.0.0.1")
    response = httpx.post(target.url, content=b"{}", headers={"host": target.host_header})
    assert response.status_code == 204
    assert hosts == [f"localhost:{port}"]
    # Another internal network stays refused.
    with pytest.raises(egress.EgressRefused):
        asyncio.run(egress.resolve("http://192.168.1.1/"))


def test_https_names_keep_their_tls_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(egress.ALLOWED_NETWORKS_ENV, "127.0.0.0/8,::1/128")
    target = asyncio.run(egress.resolve("https://localhost/hook"))
    assert target.url in ("https://127.0.0.1/hook", "https://[::1]/hook") and target.tls_name == "localhost"


def test_a_delivery_holds_no_transaction_while_the_receiver_answers(
    server: TestServer, tenant: TenantHandle, receiver: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver may take seconds: the attempt's session is out of its transaction meanwhile, and the
    attempt is still logged (in a new one) when the answer comes."""
    port, hosts = receiver
    monkeypatch.setenv(egress.ALLOWED_NETWORKS_ENV, "127.0.0.0/8")
    seen: list[bool] = []

    async def scenario() -> WebhookDelivery:
        async with server.db.session() as session:
            sub = await alerts.create_webhook(
                session,
                tenant.tenant_id,
                url=f"http://127.0.0.1:{port}/in",
                event_types=None,
                description=None,
            )
            delivery = WebhookDelivery(
                tenant_id=tenant.tenant_id,
                subscription_id=sub.id,
                message_id="msg_test",
                event_type="alert.created",
                payload={"x": 1},
            )
            session.add(delivery)
        real_post = httpx.AsyncClient.post

        async def watched_post(client: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
            seen.append(session.in_transaction())
            return await real_post(client, *args, **kwargs)

        monkeypatch.setattr(httpx.AsyncClient, "post", watched_post)
        async with server.db.session() as session:
            await webhooks.attempt(session, tenant.tenant_id, delivery.id, "alerts.webhook.deliver")
        async with server.db.session() as session:
            found = await session.get(WebhookDelivery, delivery.id)
            assert found is not None
            return found

    done = server.run(scenario())
    assert seen == [False]
    assert hosts == [f"127.0.0.1:{port}"]
    assert done.status == "delivered" and done.attempts == 1 and done.log[0]["statusCode"] == 204
