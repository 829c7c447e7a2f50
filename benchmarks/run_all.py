"""``make bench``: every headline benchmark, one after the other, each printing its ratios.

    python benchmarks/run_all.py [--only all | directory,scim,...] [--users 100000 --groups 10000]
                                 [--duration 10] [--no-pin] [--keep]

``make bench`` passes ``--only all``; without ``--only`` only the directory benchmark runs.

``directory`` (the Graph read path) seeds a PostgreSQL directory, loads it and drops it. Every other
``benchmarks/bench_<name>.py`` listed in ``OTHER_BENCHES`` runs as its own process with its own defaults
(a failing or missing one is reported and the others still run; the exit status says whether all passed).

Needs PostgreSQL on 127.0.0.1:5432 (or ``TRUSTPLANE_BENCH_PG``) and ``wrk``; installs wrk with apt-get when
missing and falls back to the asyncio load generator in ``loadgen.py`` when that is not possible.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_directory
import seed_directory


def ensure_wrk() -> str:
    """'wrk' when wrk is (or could be made) available, else 'python' (the fallback load generator)."""
    if shutil.which("wrk"):
        return "wrk"
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("wrk not found; installing it with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False)
        if shutil.which("wrk"):
            return "wrk"
    print("WARNING: wrk is not installable here; using the asyncio load generator (benchmarks/loadgen.py).")
    print("         Its absolute figures are lower than wrk's; compare the ratios only.", flush=True)
    return "python"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs ({model}), {memory} RAM, load average {load:.2f} at start"


HERE = Path(__file__).resolve().parent
# The benchmarks of the other parts, run as scripts in this order after the directory benchmark.
OTHER_BENCHES = ("scim", "access", "protection", "discovery", "idp_signin", "idp_token", "alerts")


def run_other(name: str) -> bool:
    script = HERE / f"bench_{name}.py"
    if not script.exists():
        print(f"\n== {name}: {script.name} not present, skipped", flush=True)
        return True
    print(f"\n== {name}: {sys.executable} {script.relative_to(HERE.parent)}", flush=True)
    return subprocess.run([sys.executable, str(script)], check=False).returncode == 0


def run_directory(args: argparse.Namespace) -> None:
    tool = args.loadgen or ensure_wrk()
    seeded = asyncio.run(seed_directory.seed(users=args.users, groups=args.groups, depth=args.depth))
    print(
        f"seeded {seeded.users} users and {seeded.groups} groups ({seeded.depth} deep) into "
        f"{seeded.database} in {seeded.seconds:.1f} s",
        flush=True,
    )
    try:
        bench_directory.run(
            seeded,
            bench_directory.Options(
                warmup=args.warmup,
                duration=args.duration,
                connections=args.connections,
                latency_connections=args.latency_connections,
                pin=not args.no_pin and (os.cpu_count() or 1) >= 2,
                tool=tool,
                fast_reads=not args.no_fast_reads,
            ),
        )
    finally:
        if args.keep:
            print(f"kept database: TRUSTPLANE_DATABASE_URL={seeded.url}")
        else:
            asyncio.run(seed_directory.drop_database(seeded.database))


def main() -> int:
    parser = argparse.ArgumentParser(description="TrustPlane benchmarks (loopback, PostgreSQL).")
    parser.add_argument(
        "--only",
        default="directory",
        help="'all', or a comma-separated subset of: directory," + ",".join(OTHER_BENCHES),
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-connections", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to CPUs")
    parser.add_argument("--loadgen", choices=["wrk", "python"], help="force a load generator")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument(
        "--no-fast-reads", action="store_true", help="directory: serve with TRUSTPLANE_GRAPH_FAST_READS=false"
    )
    args = parser.parse_args()

    every = ["directory", *OTHER_BENCHES]
    names = every if args.only == "all" else [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(every))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    print(f"TrustPlane benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}", flush=True)
    started = time.perf_counter()
    ok = True
    if "directory" in names:
        print("\n== directory: the Graph read path", flush=True)
        run_directory(args)
    for name in names:
        if name != "directory":
            ok = run_other(name) and ok
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"total {time.perf_counter() - started:.0f} s, load average {load:.2f} at the end")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
