"""Single sign-on: the token endpoint (client credentials) on one server worker, and where a token's time
goes.

Figures, each beside the yardstick measured in the same run:
* tokens/s over HTTP against ``trustplane serve``'s app in one uvicorn process (``--concurrency`` requests
  in flight, each a POST of client_id / client_secret / scope), beside bare RS256 signing of the same
  claims in this process (one core) — the ceiling when nothing but signing were done — and beside bare
  argon2id verifies/s of the same secret hash (the library's parameters, which client secrets use);
* where one token's time goes, timed in place inside the token route's own code run in-process on the
  same database (Authlib's server via ``server.token_response``, in a committed transaction, sequential): the
  client secret check (argon2id once per secret per process, then the remembered SHA-256 — see
  ``auth.service.VerifiedClientSecrets``), the RS256 signing, and the rest (tenant and app reads, claims,
  commit), each as a share of the whole; and the same two costs as shares of the HTTP time per token
  (1 / the HTTP rate), the rest there being HTTP, parsing and the database. Without the remembered
  verification every token would pay one bare argon2id verify (the second yardstick).

    python benchmarks/bench_idp_token.py [--seconds 10] [--concurrency 4] [--tokens 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

warnings.filterwarnings("ignore")
SCOPE = "https://graph.microsoft.com/.default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def prepare(url: str) -> tuple[str, str, str]:
    """Schema, the default tenant and one confidential app; returns (tenant id, client id, secret)."""
    from trustplane.auth.keys import KeyStore
    from trustplane.auth.service import create_application
    from trustplane.bootstrap import ensure_ready
    from trustplane.core.db import Database
    from trustplane.core.events import SYSTEM
    from trustplane.directory.repository import TenantLookup

    db = Database(url)
    await ensure_ready(db, KeyStore(3600))
    async with db.session() as session:
        tenant = await TenantLookup(session).default()
        assert tenant is not None
        issued = await create_application(
            session, tenant.id, SYSTEM, name="bench daemon", permissions=["Directory.Read.All"]
        )
    await db.dispose()
    return issued.tenant_id, issued.client_id, issued.client_secret


def per_second(fn: Callable[[], Any], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def yardsticks(seconds: float) -> tuple[float, float]:
    """(bare RS256 signs/s of a token's claims, bare argon2id verifies/s of a client secret) here."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    from trustplane.auth.secrets import hash_secret, random_secret, verify_secret

    key = RSAKey.generate_key(2048, parameters={"kid": "bench"}, private=True)
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1/00000000-0000-0000-0000-000000000000/v2.0",
        "aud": "https://graph.microsoft.com",
        "sub": "00000000-0000-0000-0000-000000000001",
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": "00000000-0000-0000-0000-000000000000",
        "appid": "00000000-0000-0000-0000-000000000002",
        "azp": "00000000-0000-0000-0000-000000000002",
        "app_displayname": "bench daemon",
        "idtyp": "app",
        "ver": "2.0",
        "roles": ["Directory.Read.All"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "00000000-0000-0000-0000-000000000003",
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": "bench"}
    signs = per_second(lambda: jwt.encode(header, claims, key, algorithms=["RS256"]), seconds)
    secret = random_secret(30)
    hashed = hash_secret(secret)
    verifies = per_second(lambda: verify_secret(hashed, secret), seconds)
    return signs, verifies


def serve(url: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    code = (
        "import uvicorn\n"
        "from trustplane.app import create_app\n"
        "from trustplane.settings import Settings\n"
        f"app = create_app(Settings(database_url={url!r}, data_dir={data_dir!r}, log_level='warning',"
        " access_log=False))\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


async def http_run(
    base: str, tenant_id: str, client_id: str, secret: str, seconds: float, concurrency: int
) -> float:
    data = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": SCOPE,
    }
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await http.post(f"/{tenant_id}/oauth2/v2.0/token", data=data)
            assert response.status_code == 200, response.text
            done += 1

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


async def breakdown(url: str, tenant_id: str, client_id: str, secret: str, tokens: int) -> dict[str, float]:
    """Seconds per token in each part, timed in place inside the token route's own functions."""
    from joserfc import jwt

    from trustplane.auth import service as auth_service
    from trustplane.auth import tokens as tokens_module
    from trustplane.auth.keys import KeyStore
    from trustplane.core.db import Database
    from trustplane.directory.service import resolve_tenant
    from trustplane.idp.oauth.grants import TokenContext
    from trustplane.idp.oauth.server import token_response

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return wrapper

    def timed_async(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return wrapper

    hashing, signing = "client secret check (remembered argon2id)", "RS256 signing"
    cache = auth_service.VERIFIED_CLIENT_SECRETS
    original_matches, original_jwt = cache.matches, tokens_module.jwt
    cache.matches = timed_async(hashing, original_matches)  # type: ignore[method-assign]
    tokens_module.jwt = types.SimpleNamespace(  # type: ignore[assignment]
        encode=timed(signing, jwt.encode), decode=jwt.decode, JWTClaimsRegistry=jwt.JWTClaimsRegistry
    )
    db = Database(url)
    keys = KeyStore(3600)

    async def one() -> None:
        async with db.session() as session:  # the request's transaction, committed at the end
            tenant = await resolve_tenant(session, tenant_id)
            ctx = TokenContext(
                session, keys, tenant.id, "http://127.0.0.1", ["https://graph.microsoft.com"], 3600
            )
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": SCOPE,
            }
            response = await token_response(ctx, uri="http://127.0.0.1/token", headers={}, form=form)
            assert response.status_code == 200 and b"access_token" in response.body

    try:
        for _ in range(10):
            await one()
        spent.clear()
        t0 = time.perf_counter()
        for _ in range(tokens):
            await one()
        total = time.perf_counter() - t0
    finally:
        cache.matches = original_matches  # type: ignore[method-assign]
        tokens_module.jwt = original_jwt  # type: ignore[assignment]
        await db.dispose()
    parts = {name: spent[name] / tokens for name in (hashing, signing)}
    parts["rest (tenant and app reads, claims, commit)"] = total / tokens - sum(parts.values())
    parts["total"] = total / tokens
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the HTTP run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=200, help="tokens in the in-process breakdown")
    parser.add_argument("--postgres", default="", help="a postgresql+asyncpg:// URL (an empty database)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-idp-token-")
    url = args.postgres or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"load average at start: {os.getloadavg()[0]:.2f}; backend {backend}", flush=True)
    tenant_id, client_id, secret = asyncio.run(prepare(url))

    signs, verifies = yardsticks(3.0)
    print(f"yardstick: bare RS256 signing of the same claims {signs:.0f}/s on one core", flush=True)
    print(f"yardstick: bare argon2id verify of a client secret {verifies:.1f}/s on one core", flush=True)

    port = free_port()
    server = serve(url, port, tmp)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(http_run(base, tenant_id, client_id, secret, 2.0, args.concurrency))  # warm-up
        rate = asyncio.run(http_run(base, tenant_id, client_id, secret, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(
        f"client credentials over HTTP, one worker, {args.concurrency} in flight: {rate:.1f} tokens/s "
        f"= {rate / signs:.3f} x bare signing, {rate / verifies:.2f} x bare argon2id verifies",
        flush=True,
    )

    parts = asyncio.run(breakdown(url, tenant_id, client_id, secret, args.tokens))
    total = parts.pop("total")
    per_http = 1 / rate
    print(f"one token in-process (Authlib token_response + commit, sequential): {total * 1000:.2f} ms")
    print(f"{'':46s} {'ms':>8s} {'of in-process':>14s} {'of HTTP time':>13s}")
    for name, seconds in parts.items():
        of_http = f"{seconds / per_http:12.1%}" if not name.startswith("rest") else f"{'':12s}"
        print(f"  {name:44s} {seconds * 1000:8.2f} {seconds / total:13.1%} {of_http}")
    rest_http = per_http - sum(v for k, v in parts.items() if not k.startswith("rest"))
    print(
        f"  {'rest of the HTTP time (HTTP, parsing, database)':44s} {rest_http * 1000:8.2f} {'':13s} "
        f"{rest_http / per_http:12.1%}"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
