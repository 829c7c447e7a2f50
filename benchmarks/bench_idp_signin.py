"""Single sign-on: a full password sign-in — the sign-in page (pre-auth flow, CSRF token), the form post
(smart-lockout check, argon2id verify at OWASP's parameters, identity protection's ``assess``, conditional
access's decision written onto the signIn record, the browser session) — on one server worker.

Figures, each beside the yardstick measured in the same run:
* sign-ins/s over HTTP against ``trustplane serve``'s app in one uvicorn process (``--concurrency`` browsers
  in flight, each sign-in a GET of the page and a POST of the form), beside bare argon2id verifies/s in this
  process (one core, the same parameters) — the ceiling a sign-in cannot pass;
* where a sign-in's time goes, measured inside ``service.password_step`` run in-process on the same
  database (each part timed in place by wrapping the function that does it): argon2id verify, identity
  protection's assess, conditional access (context with the user's groups and risk, evaluation, writing the
  decision), session creation, the rest (lockout reads, flow, commit), each as a share of the whole.
  The tenant has five conditional access policies (one applies to the users), so the decision is not empty.

    python benchmarks/bench_idp_signin.py [--sign-ins 300] [--concurrency 4] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

warnings.filterwarnings("ignore")
PASSWORD = "Correct-Horse-42"  # noqa: S105  (the benchmark users' password)
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def prepare(url: str, users: int) -> tuple[str, list[str]]:
    """Schema, the default tenant, users with passwords and a few conditional access policies."""
    from trustplane.access import service as access
    from trustplane.auth.keys import KeyStore
    from trustplane.bootstrap import ensure_ready
    from trustplane.core.db import Database
    from trustplane.core.events import SYSTEM
    from trustplane.directory import service as directory
    from trustplane.directory.repository import TenantLookup

    db = Database(url)
    await ensure_ready(db, KeyStore(3600))
    async with db.session() as session:
        tenant = await TenantLookup(session).default()
        assert tenant is not None
        tenant_id = tenant.id
    group_id = ""
    upns = []
    async with db.session() as session:
        group = await directory.create_group(
            session,
            tenant_id,
            SYSTEM,
            {
                "display_name": "Bench staff",
                "mail_nickname": "benchstaff",
                "mail_enabled": False,
                "security_enabled": True,
            },
        )
        group_id = group.id
        for i in range(users):
            user = await directory.create_user(
                session,
                tenant_id,
                SYSTEM,
                {
                    "user_principal_name": f"bench{i}-{os.getpid()}@bench.example",
                    "display_name": f"Bench {i}",
                    "mail_nickname": f"b{i}",
                },
                password=PASSWORD,
            )
            await directory.add_member(session, tenant_id, SYSTEM, group_id, user.id)
            upns.append(user.user_principal_name)
    async with db.session() as session:
        staff = {"includeGroups": [group_id]}
        for name, state, users, grant, extra in [
            ("Staff: compliant device", "enabledForReportingButNotEnforced", staff, "compliantDevice", {}),
            ("Staff: MFA at high sign-in risk", "enabled", staff, "mfa", {"signInRiskLevels": ["high"]}),
            ("Staff: block at high user risk", "enabled", staff, "block", {"userRiskLevels": ["high"]}),
            (
                "Everyone: MFA (report-only)",
                "enabledForReportingButNotEnforced",
                {"includeUsers": ["All"]},
                "mfa",
                {},
            ),
            ("Nobody: block", "enabled", {"includeUsers": ["None"]}, "block", {}),
        ]:
            await access.create_policy(
                session,
                tenant_id,
                SYSTEM,
                {
                    "displayName": name,
                    "state": state,
                    "conditions": {
                        "users": users,
                        "applications": {"includeApplications": ["All"]},
                        **extra,
                    },
                    "grantControls": {"operator": "OR", "builtInControls": [grant]},
                },
            )
    await db.dispose()
    return tenant_id, upns


def argon_rate(seconds: float) -> float:
    from trustplane.auth.secrets import hash_password
    from trustplane.idp.signin.password import verify_password_sync

    hashed = hash_password(PASSWORD)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        assert verify_password_sync(hashed, PASSWORD)
        n += 1
    return n / (time.perf_counter() - t0)


def serve(url: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    code = (
        "import uvicorn\n"
        "from trustplane.app import create_app\n"
        "from trustplane.settings import Settings\n"
        f"app = create_app(Settings(database_url={url!r}, data_dir={data_dir!r}, log_level='warning'))\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


async def http_run(base: str, tenant_id: str, upns: list[str], sign_ins: int, concurrency: int) -> float:
    """Sign-ins per second over HTTP; each worker is one browser signing in again and again."""
    done = 0
    failures = 0

    async def browser(k: int) -> None:
        nonlocal done, failures
        ip = f"198.51.{k // 250}.{k % 250 + 1}"
        async with httpx.AsyncClient(base_url=base, headers={"X-Forwarded-For": ip}, timeout=60) as http:
            i = k
            while done < sign_ins:
                http.cookies.clear()
                page = await http.get(f"/{tenant_id}/signin")
                token = _CSRF.search(page.text)
                assert token, page.text[:200]
                answer = await http.post(
                    f"/{tenant_id}/signin",
                    data={
                        "csrf_token": token.group(1),
                        "username": upns[i % len(upns)],
                        "password": PASSWORD,
                    },
                )
                if answer.status_code != 303 or "tp_session" not in answer.cookies:
                    failures += 1
                done += 1
                i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(browser(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{failures} sign-ins did not end in a session")
    return done / elapsed


async def breakdown(url: str, tenant_id: str, upns: list[str], sign_ins: int) -> dict[str, float]:
    """Seconds per sign-in spent in each part, timed in place inside ``password_step``."""
    from trustplane.core.db import Database
    from trustplane.idp.signin import service

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return wrapper

    patches = [
        (service.password, "verify_password", "argon2id verify"),
        (service.protection, "assess", "identity protection (assess)"),
        (service, "decide", "conditional access (decide)"),
        (service.sessions, "create_session", "session creation"),
    ]
    originals = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    db = Database(url)
    try:
        for obj, attr, name in patches:
            setattr(obj, attr, timed(name, getattr(obj, attr)))
        facts = service.RequestFacts(ip_address="198.51.100.7", user_agent="bench/1.0")
        for warm in range(20):
            async with db.session() as session:
                flow, _ = await service.start_flow(session, tenant_id, return_to=None)
                await service.password_step(session, tenant_id, flow, upns[warm % len(upns)], PASSWORD, facts)
        spent.clear()
        t0 = time.perf_counter()
        for i in range(sign_ins):
            async with db.session() as session:  # the request's transaction, committed at the end
                flow, _ = await service.start_flow(session, tenant_id, return_to=None)
                outcome = await service.password_step(
                    session, tenant_id, flow, upns[i % len(upns)], PASSWORD, facts
                )
                assert outcome.next == "done", outcome
        total = time.perf_counter() - t0
    finally:
        for obj, attr, fn in originals:
            setattr(obj, attr, fn)
        await db.dispose()
    parts = {name: spent[name] / sign_ins for _, _, name in patches}
    parts["rest (lockout, flow, commit)"] = total / sign_ins - sum(parts.values())
    parts["total"] = total / sign_ins
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sign-ins", type=int, default=300)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--postgres", default="", help="a postgresql+asyncpg:// URL (an empty database)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-idp-signin-")
    url = args.postgres or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"load average at start: {os.getloadavg()[0]:.2f}; backend {backend}", flush=True)
    tenant_id, upns = asyncio.run(prepare(url, args.users))

    before = argon_rate(3.0)
    print(f"yardstick: bare argon2id verify (m=19456 KiB, t=2, p=1) {before:.1f}/s on one core", flush=True)

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
        asyncio.run(http_run(base, tenant_id, upns, 20, args.concurrency))  # warm-up
        rate = asyncio.run(http_run(base, tenant_id, upns, args.sign_ins, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=20)
    # The machine may be shared: the yardstick again after the run, and the ratio against the mean of both.
    after = argon_rate(3.0)
    verifies = (before + after) / 2
    print(
        f"password sign-in over HTTP, one worker, {args.concurrency} in flight: {rate:.1f} sign-ins/s "
        f"= {rate / verifies:.2f} x the bare argon2id verify rate "
        f"({before:.1f}/s before, {after:.1f}/s after)",
        flush=True,
    )

    parts = asyncio.run(breakdown(url, tenant_id, upns, args.sign_ins))
    bare = 1 / argon_rate(3.0)
    total = parts.pop("total")
    print(
        f"one sign-in in-process (service.password_step + commit, sequential): {total * 1000:.1f} ms "
        f"= {total / bare:.2f} x one bare argon2id verify ({bare * 1000:.1f} ms, measured right after)",
        flush=True,
    )
    for name, seconds in parts.items():
        print(f"  {name:32s} {seconds * 1000:7.2f} ms  {seconds / total:6.1%}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
