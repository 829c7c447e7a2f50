"""SCIM face under load, as a ratio to a bare FastAPI endpoint measured in the same run.

A PostgreSQL directory is seeded with ``seed_directory.py`` (100k users, 10k groups by default), then
``trustplane serve`` and the bare app (``bare_app.py``) are run the same way as ``bench_directory.py`` does
(one process each, pinned to CPU 0 when pinning is on; the load generator on CPU 1). Measured:

- ``GET /scim/v2/Users?filter=userName eq "…"`` with userNames rotating over a sample of seeded users:
  throughput (many connections) as a ratio to the bare GET, and p50/p99 at one connection;
- a one-member PATCH (``add`` then ``remove`` of a member, alternating, one connection) on a group of 100
  members and on a group of 10,000: p50/p99 of each and their ratio — a member change costs O(1) when the
  ratio stays near 1.

    python benchmarks/bench_scim.py            # 100k users on PostgreSQL
    python benchmarks/bench_scim.py --quick    # a small smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_directory import (
    BareServer,
    LoadGenerator,
    Options,
    Row,
    Target,
    TrustPlaneServer,
    measure,
)
from seed_directory import SeededDirectory, _db_dsn, drop_database, seed

from trustplane.auth.permissions import SCIM_READWRITE_ALL
from trustplane.auth.service import create_api_token
from trustplane.core.db import Database
from trustplane.core.events import SYSTEM
from trustplane.directory.service import create_group

TARGET_P99_MS = 20.0  # the target for the filter, at one connection
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def prepare(seeded: SeededDirectory, sizes: list[int]) -> tuple[str, dict[int, str], list[str]]:
    """A SCIM API token, one group per size with that many user members (bulk-inserted edges), and users
    that are in none of them (to add and remove)."""
    db = Database(seeded.url)
    try:
        async with db.session() as session:
            token = await create_api_token(
                session, seeded.tenant_id, SYSTEM, name="bench scim", permissions=[SCIM_READWRITE_ALL]
            )
            groups = {}
            for size in sizes:
                group = await create_group(
                    session,
                    seeded.tenant_id,
                    SYSTEM,
                    {
                        "display_name": f"bench {size}",
                        "mail_nickname": f"bench{size}",
                        "mail_enabled": False,
                        "security_enabled": True,
                    },
                )
                groups[size] = group.id
    finally:
        await db.dispose()
    conn = await asyncpg.connect(_db_dsn(seeded.database))
    try:
        ids = [
            r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id LIMIT $1", max(sizes) + 200)
        ]
        for size, group_id in groups.items():
            await conn.executemany(
                "INSERT INTO memberships (group_id, member_id, member_type, tenant_id, created_at) "
                "VALUES ($1, $2, 'user', $3, now())",
                [(group_id, uid, seeded.tenant_id) for uid in ids[:size]],
            )
        await conn.execute("ANALYZE memberships")
    finally:
        await conn.close()
    return token.token, groups, ids[max(sizes) :]


def patch_latency(
    base: str, token: str, groups: dict[int, str], spare: list[str], requests: int
) -> dict[int, list[float]]:
    """Sequential one-member PATCHes (add a user, then remove it again), in milliseconds, alternating between
    the groups request by request so that a change in the machine's load touches every size alike."""
    timings: dict[int, list[float]] = {size: [] for size in groups}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(requests):
            user = spare[(i // 2) % len(spare)]
            op = (
                {"op": "add", "path": "members", "value": [{"value": user}]}
                if i % 2 == 0
                else {"op": "remove", "path": f'members[value eq "{user}"]'}
            )
            body = {"schemas": [PATCH_OP], "Operations": [op]}
            for size, group_id in groups.items():
                started = time.perf_counter()
                response = client.patch(f"/scim/v2/Groups/{group_id}", json=body)
                timings[size].append((time.perf_counter() - started) * 1000)
                if response.status_code != 204:
                    raise RuntimeError(f"PATCH -> {response.status_code} {response.text[:300]}")
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check(base: str, token: str, user_name: str) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        found = client.get("/scim/v2/Users", params={"filter": f'userName eq "{user_name}"'}).json()
    if found.get("totalResults") != 1:
        raise RuntimeError(f"sanity check: userName filter -> {found}")


def run(seeded: SeededDirectory, opts: Options, sizes: list[int], patches: int) -> list[str]:
    load_before = os.getloadavg()
    token, groups, spare = asyncio.run(prepare(seeded, sizes))
    server_cpu = 0 if opts.pin else None
    workdir = Path(tempfile.mkdtemp(prefix="trustplane-bench-scim-"))
    gen = LoadGenerator(opts.tool, 1 if opts.pin else None, workdir)
    filter_paths = [
        "/scim/v2/Users?filter=" + quote(f'userName eq "{upn}"', safe="") for _, upn in seeded.sample
    ]
    bare_paths = [f"/v1.0/users/{u}" for u, _ in seeded.sample]
    patch_rows: dict[int, list[float]] = {}
    try:
        with BareServer(server_cpu) as bare, TrustPlaneServer(seeded.url, server_cpu) as tp:
            check(tp.url, token, seeded.sample[0][1])
            print(
                f"load: {opts.tool}, {opts.connections} connections for throughput, "
                f"{opts.latency_connections} for latency, {opts.duration:g} s each after {opts.warmup:g} s "
                f"warm-up; pinned: {opts.pin}",
                flush=True,
            )
            bare_target = Target("bare FastAPI GET /v1.0/users/{id}", "GET", bare_paths)
            scim_target = Target(
                'GET /scim/v2/Users?filter=userName eq "…"', "GET", filter_paths, auth=f"Bearer {token}"
            )
            bare_before = measure(gen, bare, bare_target, opts)
            scim_row = measure(gen, tp, scim_target, opts)
            bare_after = measure(gen, bare, bare_target, opts)
            patch_latency(tp.url, token, groups, spare, min(20, patches))  # warm-up
            patch_rows = patch_latency(tp.url, token, groups, spare, patches)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(bare_before, bare_after, scim_row, patch_rows, opts, load_before, os.getloadavg())


def report(
    bare_before: Row,
    bare_after: Row,
    scim_row: Row,
    patch_rows: dict[int, list[float]],
    opts: Options,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> list[str]:
    ceiling = (bare_before.throughput.rps + bare_after.throughput.rps) / 2
    drift = abs(bare_before.throughput.rps - bare_after.throughput.rps) / ceiling
    t, lat = scim_row.throughput, scim_row.latency
    c, lc = opts.connections, opts.latency_connections
    bare_cpus = [r.throughput.server_cpu_us for r in (bare_before, bare_after)]
    cpu = "n/a"
    if t.server_cpu_us is not None and None not in bare_cpus:
        bare_cpu = sum(x for x in bare_cpus if x is not None) / 2
        cpu = f"{t.server_cpu_us:.0f} ({bare_cpu / t.server_cpu_us:.1%})"
    lines = [
        "",
        f"ceiling (bare FastAPI, mean of before/after): {ceiling:.0f} req/s (drift {drift:.0%})",
        "",
        f"| target | req/s (c={c}) | ratio to ceiling | server CPU us/req (CPU ratio) | p50 / p99 ms (c={c}) "
        f"| p50 / p99 ms (c={lc}) | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| {scim_row.target} | {t.rps:.0f} | {t.rps / ceiling:.1%} | {cpu} "
        f"| {t.p50_ms:.2f} / {t.p99_ms:.2f} | {lat.p50_ms:.2f} / {lat.p99_ms:.2f} "
        f"| p99 c={lc} {'PASS' if lat.p99_ms < TARGET_P99_MS else 'MISS'} |",
        "",
        "| one-member PATCH (add / remove, c=1, sizes interleaved) | requests | p50 ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for size, timings in patch_rows.items():
        lines.append(
            f"| group of {size:,} members | {len(timings)} | {statistics.median(timings):.2f} "
            f"| {pct(timings, 0.99):.2f} | {statistics.fmean(timings):.2f} |"
        )
    small, large = min(patch_rows), max(patch_rows)
    ratio50 = statistics.median(patch_rows[large]) / statistics.median(patch_rows[small])
    ratio99 = pct(patch_rows[large], 0.99) / pct(patch_rows[small], 0.99)
    lines += [
        "",
        f"PATCH cost ratio, {large:,} vs {small:,} members: p50 {ratio50:.2f}x, p99 {ratio99:.2f}x "
        f"(O(1) when near 1; the group is {large // small}x larger)",
        "load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        ),
    ]
    for line in lines:
        print(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--large-group", type=int, default=10_000, help="members of the large group")
    parser.add_argument("--small-group", type=int, default=100, help="members of the small group")
    parser.add_argument("--patches", type=int, default=400, help="PATCH requests per group")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to CPUs")
    parser.add_argument(
        "--tool", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (2k users, short runs)")
    args = parser.parse_args()
    if args.quick:
        args.users, args.groups, args.large_group, args.patches = 2_000, 200, 1_000, 60
        args.duration, args.warmup = 2.0, 1.0
    opts = Options(
        warmup=args.warmup,
        duration=args.duration,
        connections=args.connections,
        pin=not args.no_pin,
        tool=args.tool,
    )
    seeded = asyncio.run(seed(users=args.users, groups=args.groups, depth=args.depth, sample=5_000))
    print(
        f"seeded {seeded.users} users, {seeded.groups} groups into {seeded.database} "
        f"in {seeded.seconds:.1f} s"
    )
    try:
        run(seeded, opts, [args.small_group, args.large_group], args.patches)
    finally:
        asyncio.run(drop_database(seeded.database))


if __name__ == "__main__":
    main()
