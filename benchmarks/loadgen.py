"""Fallback load generator, used only when ``wrk`` cannot be installed: keep-alive HTTP/1.1 connections on
asyncio (uvloop when present), each sending the next request as soon as the previous answer is read, over a
rotating list of paths. Prints one ``WRKJSON {…}`` line in the same shape as the wrk script's ``done()``.
Slower than wrk, so its figures are only comparable with each other (ratios), not with wrk's.

    python benchmarks/loadgen.py URL PATHS_FILE METHOD BODY_FILE AUTH CONNECTIONS SECONDS
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _worker(
    host: str, port: int, requests: list[bytes], start: int, stop_at: float, latencies: list[float]
) -> dict[str, int]:
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        errors["connect"] += 1
        return errors
    for raw in itertools.islice(itertools.cycle(requests), start, None):
        if time.perf_counter() >= stop_at:
            break
        began = time.perf_counter()
        writer.write(raw)
        try:
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors["read"] += 1
            break
        latencies.append(time.perf_counter() - began)
        parts = status_line.split()
        if len(parts) < 2 or int(parts[1]) > 399:
            errors["status"] += 1
    writer.close()
    return errors


async def _run(url: str, requests: list[bytes], connections: int, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    latencies: list[float] = []
    began = time.perf_counter()
    stop_at = began + seconds
    results = await asyncio.gather(
        *(
            _worker(parts.hostname or "127.0.0.1", parts.port or 80, requests, i * 7, stop_at, latencies)
            for i in range(connections)
        )
    )
    duration = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6)

    summary: dict[str, float] = {
        "requests": len(latencies),
        "duration_us": int(duration * 1e6),
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "max_us": int(latencies[-1] * 1e6) if latencies else 0,
        "mean_us": statistics.fmean(latencies) * 1e6 if latencies else 0.0,
    }
    for key in ("connect", "read", "write", "status", "timeout"):
        summary[key] = sum(r[key] for r in results)
    return summary


def main() -> None:
    url, paths_file, method, body_file, auth, connections, seconds = sys.argv[1:8]
    parts = urlsplit(url)
    body = Path(body_file).read_bytes() if body_file else b""
    headers = f"Host: {parts.netloc}\r\n"
    if auth:
        headers += f"Authorization: {auth}\r\n"
    if body:
        headers += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    paths = [line.strip() for line in Path(paths_file).read_text().splitlines() if line.strip()]
    requests = [f"{method} {p} HTTP/1.1\r\n{headers}\r\n".encode() + body for p in paths]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    summary = asyncio.run(_run(url, requests, int(connections), float(seconds)))
    print("WRKJSON " + json.dumps(summary))


if __name__ == "__main__":
    main()
