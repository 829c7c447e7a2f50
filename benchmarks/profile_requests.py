"""CPU time per request, in-process: the ASGI app called directly (no uvicorn, no sockets), one request at
a time, against a seeded PostgreSQL directory, beside the bare FastAPI app (``bare_app.py``) called alike.
``time.process_time`` counts only this process's CPU, so the figures hold up on a shared machine far better
than wall-clock throughput; PostgreSQL's own CPU is not counted (it runs in other processes).

    python benchmarks/profile_requests.py [--users 20000 --groups 2000] [--requests 700 --repeats 5]
    python benchmarks/profile_requests.py --quick
    python benchmarks/profile_requests.py --profile "GET /users/{id}"   # cProfile of one target

Every figure is printed as microseconds of CPU per request and as a multiple of the bare app's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_app
import seed_directory

import trustplane.cli as cli
from trustplane.app import create_app
from trustplane.core.observability import REGISTRY
from trustplane.settings import Settings

Call = Callable[[int], Any]  # the i-th request of a target; returns (status, body)


async def asgi_request(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def unquote_path(upn: str) -> str:
    return "/v1.0/users?$filter=" + quote(f"userPrincipalName eq '{upn}'", safe="'@")


async def _client(run: Call, indices: Iterator[int]) -> None:
    for i in indices:
        await run(i)


async def measure(run: Call, n: int, repeats: int, offset: int, concurrency: int = 1) -> float:
    """The minimum over ``repeats`` of CPU seconds per request over ``n`` requests, ``concurrency`` of them
    in flight at a time (as a load generator's connections would keep them)."""
    best = float("inf")
    for r in range(repeats):
        base = offset + r * n
        indices = iter(range(base, base + n))  # shared: each client takes the next request
        start = time.process_time()
        await asyncio.gather(*(_client(run, indices) for _ in range(concurrency)))
        best = min(best, (time.process_time() - start) / n)
    return best


async def main_async(args: argparse.Namespace) -> None:
    seeded = await seed_directory.seed(users=args.users, groups=args.groups, depth=args.depth)
    print(f"seeded {seeded.users} users / {seeded.groups} groups into {seeded.database}", flush=True)
    cache_off: dict[str, Any] = {"row_cache_size": 0} if args.no_cache else {}
    settings = Settings(
        database_url=seeded.url, run_worker_in_process=False, log_level="warning", **cache_off
    )
    app = create_app(settings)
    try:
        tune_gc = getattr(cli, "tune_gc", None)  # absent in trees before it (for before/after runs)
        if not args.default_gc and tune_gc is not None:
            tune_gc()  # as `trustplane serve` does
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.5)  # the row cache's listener connects
            status, body = await asgi_request(
                app,
                "POST",
                f"/{seeded.tenant_id}/oauth2/v2.0/token",
                [(b"content-type", b"application/x-www-form-urlencoded")],
                (
                    f"grant_type=client_credentials&client_id={seeded.client_id}"
                    f"&client_secret={quote(seeded.client_secret)}"
                    "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
                ).encode(),
            )
            assert status == 200, body
            auth = [(b"authorization", b"Bearer " + orjson.loads(body)["access_token"].encode())]
            sample = seeded.sample
            n = len(sample)
            gmg = orjson.dumps({"securityEnabledOnly": False})
            ctype = [(b"content-type", b"application/json")]

            def user_get(i: int) -> Any:
                return asgi_request(app, "GET", f"/v1.0/users/{sample[i % n][0]}", auth)

            def upn_filter(i: int) -> Any:
                return asgi_request(app, "GET", unquote_path(sample[i % n][1]), auth)

            def member_groups(i: int) -> Any:
                path = f"/v1.0/users/{sample[i % n][0]}/getMemberGroups"
                return asgi_request(app, "POST", path, auth + ctype, gmg)

            def healthz(i: int) -> Any:
                return asgi_request(app, "GET", "/healthz", [])

            def routed(run: Call) -> Call:
                async def call(i: int) -> Any:
                    settings.graph_fast_reads = False  # read per request by graph.fast_reads
                    try:
                        return await run(i)
                    finally:
                        settings.graph_fast_reads = True

                return call

            def bare(i: int) -> Any:
                return asgi_request(bare_app.app, "GET", f"/v1.0/users/{sample[i % n][0]}", [])

            for name, run in (
                ("bare", bare),
                ("get", user_get),
                ("filter", upn_filter),
                ("gmg", member_groups),
            ):
                status, body = await run(0)  # every target answers 200 before anything is timed
                assert status == 200, (name, status, body[:300])
            per_target = args.requests * args.repeats
            if n < 5 * per_target + 2 * args.warmup:
                raise SystemExit(f"--users too small: need a sample of {5 * per_target + 2 * args.warmup}")
            # Index blocks of the user sample: a "cold" run reads users no request has read before (every
            # row-cache lookup misses), the "warm" run then reads the same users again.
            warm_up, block_a, block_b = 1, 1 + 2 * args.warmup, 1 + 2 * args.warmup + per_target
            block_c, block_d = block_b + per_target, block_b + 2 * per_target
            targets: list[tuple[str, Call, int, int]] = [
                ("bare GET /users/{id}", bare, warm_up, block_a),
                ("GET /users/{id} (cold)", user_get, warm_up, block_a),
                ("GET /users/{id} (warm)", user_get, warm_up, block_a),
                ("GET /users?$filter=upn eq (cold)", upn_filter, warm_up + args.warmup, block_b),
                ("GET /users?$filter=upn eq (warm)", upn_filter, warm_up + args.warmup, block_b),
                ("POST getMemberGroups (warm)", member_groups, warm_up, block_a),
                ("GET /healthz", healthz, 0, 0),
            ]
            if hasattr(settings, "graph_fast_reads"):
                # The same reads through FastAPI's routing (graph.fast_reads off), on users not read yet.
                targets[6:6] = [
                    ("GET /users/{id} (cold, routed)", routed(user_get), warm_up, block_c),
                    ("GET /users/{id} (warm, routed)", routed(user_get), warm_up, block_c),
                    ("GET /users?$filter (cold, routed)", routed(upn_filter), warm_up + args.warmup, block_d),
                    ("GET /users?$filter (warm, routed)", routed(upn_filter), warm_up + args.warmup, block_d),
                ]
            if args.profile:
                name, run, warm, offset = next(t for t in targets if t[0] == args.profile)
                await measure(run, args.warmup, 1, warm)
                if name.endswith("(warm)"):
                    await measure(run, args.requests, args.repeats, offset)
                profiler = cProfile.Profile(time.process_time)  # CPU, not waiting on the database
                profiler.enable()
                await measure(run, args.requests, args.repeats, offset)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
                return
            results: dict[str, float] = {}
            for name, run, warm, offset in targets:
                await measure(run, args.warmup, 1, warm, args.concurrency)
                results[name] = await measure(run, args.requests, args.repeats, offset, args.concurrency)
            bare_cost = results["bare GET /users/{id}"]
            print(
                f"CPU per request, min of {args.repeats} x {args.requests}, {args.concurrency} in flight "
                f"(gc {gc.get_threshold()}):"
            )
            for name, cost in results.items():
                print(f"  {name:34s} {cost * 1e6:8.0f} us  {cost / bare_cost:5.2f}x bare")
            caches = getattr(app.state.db, "row_caches", None)
            users = caches.get("users") if caches is not None else None
            if users is None:
                print("row cache: off")
            else:
                hits, misses = (
                    REGISTRY.get_sample_value(
                        "trustplane_row_cache_lookups_total", {"table": "users", "result": result}
                    )
                    for result in ("hit", "miss")
                )
                print(f"row cache: {len(users)} users, {hits:.0f} hits, {misses:.0f} misses")
    finally:
        await seed_directory.drop_database(seeded.database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--requests", type=int, default=700)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at a time")
    parser.add_argument("--no-cache", action="store_true", help="run with the row cache off")
    parser.add_argument("--default-gc", action="store_true", help="keep Python's GC settings (no tune_gc)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--profile", help="cProfile one target by name instead of timing all")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.quick:
        args.users, args.groups, args.requests, args.repeats, args.warmup = 3_000, 300, 200, 2, 50
    # The event loop uvicorn serves with (uvloop when installed): an await on the database costs far less
    # CPU on it than on asyncio's default loop.
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
