"""Directory read path under load, as a ratio to a bare FastAPI endpoint measured in the same run.

TrustPlane (``trustplane serve``, one process) and the bare app (``bare_app.py``, served the same way) run
on loopback, each pinned to CPU 0 when pinning is on; the load generator (wrk, one thread) runs on CPU 1.
PostgreSQL is not pinned. Targets, each after a warm-up:

- ``bare``: GET /v1.0/users/{id} on the bare app (the ceiling), measured before and after TrustPlane;
- ``GET /users/{id}``: ids rotating over a sample of seeded users (not one cached row); run first, so its
  warm-up and throughput run are the first pass over the sample and the row cache mostly misses;
- ``GET /users?$filter=userPrincipalName eq '…'``: UPNs rotating the same way;
- ``GET /users/{id}`` again: the same ids revisited, the row cache warm (a realistic read load revisits
  users; both figures are reported, labelled);
- ``POST /users/{id}/getMemberGroups``: users 5 groups deep.

For each TrustPlane throughput run the report gives the row cache's hits among its user lookups and how many
requests ``graph.fast_reads`` answered (both from ``/metrics``), so every figure says which path it measured.
``--no-fast-reads`` serves with ``TRUSTPLANE_GRAPH_FAST_READS=false`` (every request through FastAPI's
routing) for a before/after on the same tree.

Each target runs twice: a throughput run (many connections) and a latency run (one connection). Beside
requests/s, the throughput run records the server process's CPU time per request (from /proc): on a shared
machine req/s drops when other processes take the server's core, CPU per request much less, so the ratio of
CPU costs is printed too as a cross-check of the req/s ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

# Acceptance targets (the foundation issue).
TARGET_RATIO = 0.40
TARGET_P99_MS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux), or None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Server:
    """A server in a child process; ``probe`` answers (any status) once it is up."""

    probe = "/"

    def __init__(self, cmd: list[str], env: dict[str, str], cpu: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = pinned([*cmd, "--host", "127.0.0.1", "--port", str(self.port)], cpu)
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix="trustplane-bench-", suffix=".log", delete=False)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Server:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd} exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                httpx.get(self.url + self.probe, timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.cmd} did not answer within 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None:
            os.unlink(self.log.name)
        else:
            print(f"server log kept: {self.log.name}", file=sys.stderr)


class TrustPlaneServer(_Server):
    """``trustplane serve`` against ``database_url`` (bootstrapped already), as an operator would run it."""

    probe = "/healthz"

    def __init__(self, database_url: str, cpu: int | None = 0, *, fast_reads: bool = True) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="trustplane-bench-")
        env = {
            **os.environ,
            "TRUSTPLANE_DATABASE_URL": database_url,
            "TRUSTPLANE_DATA_DIR": self.data_dir,
            "TRUSTPLANE_LOG_LEVEL": "warning",
            "TRUSTPLANE_GRAPH_FAST_READS": "true" if fast_reads else "false",
        }
        exe = BIN / "trustplane"
        cmd = [str(exe), "serve"] if exe.exists() else [sys.executable, "-m", "trustplane.cli", "serve"]
        super().__init__(cmd, env, cpu)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class BareServer(_Server):
    probe = "/v1.0/users/probe"

    def __init__(self, cpu: int | None = 0) -> None:
        super().__init__([sys.executable, str(HERE / "bare_app.py")], dict(os.environ), cpu)


# ---------------------------------------------------------------- load generation


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    paths: list[str]
    body: bytes | None = None
    auth: str | None = None


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: dict[str, int]
    server_cpu_us: float | None = None  # the server's CPU time per request during the run


class LoadGenerator:
    """wrk (one thread, pinned) when available, else the asyncio fallback in ``loadgen.py``."""

    def __init__(self, tool: str, cpu: int | None, workdir: Path) -> None:
        self.tool = tool
        self.cpu = cpu
        self.workdir = workdir

    def run(
        self, base_url: str, target: Target, connections: int, seconds: float, server_pid: int | None = None
    ) -> LoadResult:
        paths_file = self.workdir / f"{abs(hash(target.name))}.paths"
        if not paths_file.exists():
            paths_file.write_text("\n".join(target.paths) + "\n")
        body_file = ""
        if target.body is not None:
            body_path = self.workdir / f"{abs(hash(target.name))}.body"
            body_path.write_bytes(target.body)
            body_file = str(body_path)
        auth = target.auth or ""
        host = base_url.split("://", 1)[1]
        if self.tool == "wrk":
            cmd = [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                str(HERE / "rotate.lua"),
                base_url,
                "--",
                str(paths_file),
                target.method,
                body_file,
                auth,
                host,
            ]
        else:
            cmd = [
                sys.executable,
                str(HERE / "loadgen.py"),
                base_url,
                str(paths_file),
                target.method,
                body_file,
                auth,
                str(connections),
                str(seconds),
            ]
        cpu_before = cpu_seconds(server_pid) if server_pid else None
        out = subprocess.run(pinned(cmd, self.cpu), capture_output=True, text=True, check=False)
        cpu_after = cpu_seconds(server_pid) if server_pid else None
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"load generator failed ({out.returncode}): {out.stdout}\n{out.stderr}")
        data: dict[str, Any] = json.loads(line.split(" ", 1)[1])
        errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")}
        return LoadResult(
            rps=data["requests"] / (data["duration_us"] / 1e6),
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            requests=int(data["requests"]),
            errors=errors,
            server_cpu_us=(
                (cpu_after - cpu_before) * 1e6 / max(1, int(data["requests"]))
                if cpu_before is not None and cpu_after is not None
                else None
            ),
        )


# ---------------------------------------------------------------- the benchmark


@dataclass
class Options:
    warmup: float = 3.0
    duration: float = 10.0
    connections: int = 32
    latency_connections: int = 1
    pin: bool = True
    tool: str = "wrk"
    fast_reads: bool = True


@dataclass
class Row:
    target: str
    throughput: LoadResult
    latency: LoadResult
    during: str = ""  # what the server's /metrics say of the throughput run (row cache, fast path)


Counters = dict[str, float]


def server_counters(url: str, token: str) -> Counters:
    """From ``/metrics``: the row cache's user lookups (hit / miss), the requests ``graph.fast_reads``
    answered, and every request the server counted (``/metrics`` itself excepted)."""
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    counters: Counters = {"hit": 0.0, "miss": 0.0, "fast": 0.0, "requests": 0.0}
    for line in response.text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith("trustplane_row_cache_lookups_total{") and 'table="users"' in line:
            counters["hit" if 'result="hit"' in line else "miss"] += float(value)
        elif line.startswith("trustplane_graph_fast_reads_total{"):
            counters["fast"] += float(value)
        elif line.startswith("trustplane_http_requests_total{") and 'route="/metrics"' not in line:
            counters["requests"] += float(value)
    return counters


def describe(before: Counters, after: Counters) -> str:
    delta = {k: after[k] - before[k] for k in after}
    lookups = delta["hit"] + delta["miss"]
    cache = (
        f"row cache hits {delta['hit'] / lookups:.0%} of {lookups:.0f}" if lookups else "no row cache lookups"
    )
    return f"{cache}; fast path answered {delta['fast']:.0f} of {delta['requests']:.0f} requests"


def measure(
    gen: LoadGenerator, server: _Server, target: Target, opts: Options, token: str | None = None
) -> Row:
    url = server.url
    gen.run(url, target, opts.connections, opts.warmup)
    pid = server.proc.pid if server.proc is not None else None
    before = server_counters(url, token) if token else None
    throughput = gen.run(url, target, opts.connections, opts.duration, server_pid=pid)
    during = describe(before, server_counters(url, token)) if before and token else ""
    latency = gen.run(url, target, opts.latency_connections, opts.duration)
    for result in (throughput, latency):
        if any(result.errors.values()) or result.requests == 0:
            raise RuntimeError(f"{target.name}: errors {result.errors} in {result.requests} requests")
    print(
        f"  {target.name:<44} {throughput.rps:>8.0f} req/s   p50 {throughput.p50_ms:6.2f} ms  "
        f"p99 {throughput.p99_ms:6.2f} ms   |  c={opts.latency_connections}: p50 {latency.p50_ms:5.2f} ms  "
        f"p99 {latency.p99_ms:5.2f} ms  |  server CPU {_cpu(throughput)} us/req"
        + (f"  |  {during}" if during else ""),
        flush=True,
    )
    return Row(target.name, throughput, latency, during)


def run(seeded: Any, opts: Options) -> list[str]:
    """Runs every target against a seeded database; returns the report lines (also printed)."""
    from seed_directory import get_token, verify

    server_cpu = 0 if opts.pin else None
    gen_cpu = 1 if opts.pin else None
    workdir = Path(tempfile.mkdtemp(prefix="trustplane-bench-"))
    sample: list[tuple[str, str]] = seeded.sample
    ids = [u for u, _ in sample]
    get_paths = [f"/v1.0/users/{u}" for u in ids]
    filter_paths = [
        "/v1.0/users?$filter=" + quote(f"userPrincipalName eq '{upn}'", safe="'@") for _, upn in sample
    ]
    mg_paths = [f"/v1.0/users/{u}/getMemberGroups" for u in ids]
    gen = LoadGenerator(opts.tool, gen_cpu, workdir)
    try:
        with (
            BareServer(server_cpu) as bare,
            TrustPlaneServer(seeded.url, server_cpu, fast_reads=opts.fast_reads) as tp,
        ):
            token = get_token(tp.url, seeded)
            verify(tp.url, token, seeded)
            print(f"sanity check through the HTTP API: ok ({seeded.depth} groups from getMemberGroups)")
            auth = f"Bearer {token}"
            bare_target = Target("bare FastAPI GET /v1.0/users/{id}", "GET", get_paths)
            targets = [
                Target("GET /v1.0/users/{id} (first pass)", "GET", get_paths, auth=auth),
                Target("GET /v1.0/users?$filter=userPrincipalName eq", "GET", filter_paths, auth=auth),
                Target("GET /v1.0/users/{id} (revisited)", "GET", get_paths, auth=auth),
                Target(
                    "POST /v1.0/users/{id}/getMemberGroups",
                    "POST",
                    mg_paths,
                    body=b'{"securityEnabledOnly": false}',
                    auth=auth,
                ),
            ]
            print(
                f"load: {opts.tool}, {opts.connections} connections for throughput, "
                f"{opts.latency_connections} for latency, {opts.duration:g} s each after {opts.warmup:g} s "
                f"warm-up; pinned: {opts.pin}; graph fast reads: {'on' if opts.fast_reads else 'off'}",
                flush=True,
            )
            bare_before = measure(gen, bare, bare_target, opts)
            rows = [measure(gen, tp, t, opts, token) for t in targets]
            bare_after = measure(gen, bare, bare_target, opts)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(bare_before, bare_after, rows, opts)


def _cpu(result: LoadResult) -> str:
    return f"{result.server_cpu_us:.0f}" if result.server_cpu_us is not None else "n/a"


def report(bare_before: Row, bare_after: Row, rows: list[Row], opts: Options) -> list[str]:
    before, after = bare_before.throughput, bare_after.throughput
    ceiling = (before.rps + after.rps) / 2
    drift = abs(before.rps - after.rps) / ceiling
    bare_cpu = (
        (before.server_cpu_us + after.server_cpu_us) / 2
        if before.server_cpu_us is not None and after.server_cpu_us is not None
        else None
    )
    c, lc = opts.connections, opts.latency_connections
    lines = [
        "",
        f"ceiling (bare FastAPI, mean of before/after): {ceiling:.0f} req/s (before {before.rps:.0f}, "
        f"after {after.rps:.0f}, drift {drift:.0%}); server CPU {_cpu(before)} / {_cpu(after)} us/req; "
        f"p99 {before.p99_ms:.2f} ms at c={c}, {bare_before.latency.p99_ms:.2f} ms at c={lc}",
        "",
        f"| target | req/s (c={c}) | ratio to ceiling | server CPU us/req (ratio) | p50 / p99 ms (c={c}) "
        f"| p50 / p99 ms (c={lc}) | verdict | during the throughput run |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        t, lat = row.throughput, row.latency
        ratio = t.rps / ceiling
        cpu_ratio = f" ({bare_cpu / t.server_cpu_us:.1%})" if bare_cpu is not None and t.server_cpu_us else ""
        verdicts = []
        if not row.target.startswith("POST"):
            verdicts.append(f"ratio {'PASS' if ratio >= TARGET_RATIO else 'MISS'}")
        verdicts.append(f"p99 c={c} {'PASS' if t.p99_ms < TARGET_P99_MS else 'MISS'}")
        verdicts.append(f"p99 c={lc} {'PASS' if lat.p99_ms < TARGET_P99_MS else 'MISS'}")
        lines.append(
            f"| {row.target} | {t.rps:.0f} | {ratio:.1%} | {_cpu(t)}{cpu_ratio} "
            f"| {t.p50_ms:.2f} / {t.p99_ms:.2f} | {lat.p50_ms:.2f} / {lat.p99_ms:.2f} "
            f"| {', '.join(verdicts)} | {row.during} |"
        )
    lines.append("")
    lines.append(
        f"targets: req/s >= {TARGET_RATIO:.0%} of the ceiling (the two GETs), p99 < {TARGET_P99_MS:g} ms. "
        "CPU ratio: bare CPU per request / target CPU per request."
    )
    for line in lines:
        print(line)
    return lines
