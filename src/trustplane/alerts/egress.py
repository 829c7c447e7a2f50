"""Where a webhook may send: public addresses only, unless the operator allows a network.

A webhook URL is given by any tenant admin, and the delivery runs inside TrustPlane's network, so without a
guard a subscription to ``http://169.254.169.254/…`` or ``http://127.0.0.1:5432`` would make TrustPlane call
its cloud metadata service or its own database for them (server-side request forgery). Every delivery
resolves the URL's host, refuses it unless every address it resolves to is globally routable or inside a
network listed in ``TRUSTPLANE_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDRs, e.g. an internal SIEM's
``10.20.0.0/16``; ``127.0.0.0/8`` for a receiver on the same host), and then connects to the address it
checked — not to a second lookup an attacker's DNS could answer differently (rebinding). TLS still verifies
the certificate against the URL's host name (sent as SNI). An address literal that is refused is refused
when the subscription is made as well, so the admin hears of it at once."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

ALLOWED_NETWORKS_ENV = "TRUSTPLANE_WEBHOOK_ALLOWED_NETWORKS"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


def allowed_networks() -> tuple[Network, ...]:
    raw = os.environ.get(ALLOWED_NETWORKS_ENV, "")
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def permitted(address: Address, allowed: tuple[Network, ...]) -> bool:
    address = _plain(address)
    if any(address in network for network in allowed if network.version == address.version):
        return True
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_literal(url: str) -> None:
    """Refuse, when the subscription is made, a URL whose host is an address webhooks may not reach."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is not None and not permitted(address, allowed_networks()):
        raise EgressRefused(_refusal(host, address))


def _refusal(host: str, address: Address) -> str:
    return (
        f"{host} is {address}, which is not a public address; webhooks reach only public addresses "
        f"unless the operator allows the network in {ALLOWED_NETWORKS_ENV}."
    )


@dataclass(frozen=True)
class Target:
    """Where to connect (the checked address), and what to tell the server (Host header, TLS name)."""

    url: str
    host_header: str
    tls_name: str | None


async def resolve(url: str) -> Target:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = allowed_networks()
    literal = literal_address(host)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise EgressRefused(f"{host} does not resolve: {exc.strerror}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not permitted(address, allowed):
            raise EgressRefused(_refusal(host, address))
    chosen = addresses[0]
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=host_header,
        tls_name=host if parts.scheme == "https" and literal is None else None,
    )
