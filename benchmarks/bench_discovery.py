"""Cloud discovery throughput: end-to-end lines/s and MB/s per log format (parse + catalogue match +
aggregation per app, user, IP and day: ``discovery.processing.process_slice``, the work of a processing job
minus its database writes, in slices of ``service.SLICE_LINES`` lines as the job runs them), on generated
files, beside two yardsticks measured in the same run:

* ``wc -l`` on the same file: the read floor (a C loop that only counts newlines);
* ``pycef`` (PyPI) parsing the same CEF file line by line (a peer Python CEF parser), on the first
  ``--pycef-lines`` lines, right before TrustPlane's CEF run and right after it (the ratio uses their mean).

A file is parsed by ``--workers`` processes (default one per CPU, as the job worker does: the processing
process and its helpers, ``discovery.processing``); pycef and ``wc -l`` use one. Each format runs in its own
child process, so its peak RSS (with its helpers', summed) is its own; running two sizes (``--lines`` and a
tenth of it) shows whether memory stays flat as files grow.

A last run processes one large file (``--big-gb``, 5 GB by default, the issue's Show 6 size) through the
processing job's own path, database writes included (``service.process_next_slice`` committing each slice's
sums and checkpoint to a temporary SQLite database), and reports its peak RSS against the 1 GB budget.

    python benchmarks/bench_discovery.py [--quick] [--lines 5000000] [--formats squid,cef,...] [--big-gb 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue as queue_module
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOSTS = [
    "www.dropbox.com", "content.dropboxapi.com", "app.slack.com", "files.slack.com", "mega.nz", "github.com",
    "raw.githubusercontent.com", "drive.google.com", "docs.google.com", "zoom.us", "us02web.zoom.us",
    "wetransfer.com", "chatgpt.com", "claude.ai", "www.salesforce.com", "outlook.live.com",
    "acme.sharepoint.com", "news.example-portal.net", "cdn.unlisted-share.net", "api.internal-tools.org",
]  # fmt: skip
SOURCES = {
    "squid": "SQUID",
    "cef": "GENERIC_CEF",
    "leef": "GENERIC_LEEF",
    "w3c": "BLUECOAT",
    "zscaler": "ZSCALER",
    "paloalto": "PALO_ALTO",
    "fortigate": "FORTIGATE",
    "cisco_asa": "CISCO_ASA",
}
START = 1793610000  # 2026-11-02T09:00:00Z


def _pick(rng: random.Random, i: int) -> tuple[int, str, str, str, int, int, bool, str]:
    ts = START + i // 20
    u = rng.randrange(2000)
    user = f"user{u}"
    # each user has a desk IP and, now and then, a second one (VPN): realistic user-IP pairs
    ip = f"10.{u % 4}.{u // 8 % 256}.{u % 254 + 1}" if rng.random() < 0.9 else f"10.9.{u % 256}.{u % 200 + 1}"
    host = HOSTS[rng.randrange(len(HOSTS))]
    up, down = rng.randrange(100, 50_000), rng.randrange(100, 500_000)
    blocked = rng.random() < 0.05
    dst = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return ts, user, ip, host, up, down, blocked, dst


def _stamp(ts: int, fmt: str) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def squid(rng: random.Random, i: int) -> str:
    ts, user, ip, host, _up, down, blocked, dst = _pick(rng, i)
    code = "TCP_DENIED/403" if blocked else "TCP_MISS/200"
    if i % 3:
        return (
            f"{ts}.{i % 1000:03d} {rng.randrange(1, 99999):6d} {ip} {code} {down} GET"
            f" https://{host}/p/{i % 977} {user} HIER_DIRECT/{dst} text/html"
        )
    return (
        f"{ts}.{i % 1000:03d} {rng.randrange(1, 99999):6d} {ip} {code} {down} CONNECT {host}:443 {user}"
        f" HIER_DIRECT/{dst} -"
    )


ESCAPED = "a\\=1&b\\=2"  # one line in a hundred carries CEF escapes


def cef(rng: random.Random, i: int) -> str:
    ts, user, ip, host, up, down, blocked, dst = _pick(rng, i)
    return (
        f"<134>Nov  2 09:00:00 gw01 CEF:0|Acme|WebGate|4.2|100|Web request|3|rt={ts}000 src={ip}"
        f" suser={user} "
        f"dhost={host} request=https://{host}/q?{ESCAPED if i % 100 == 0 else 'a'} out={up} in={down}"
        f" act={'blocked' if blocked else 'allowed'} "
        f"dst={dst} msg=request seen by the gateway"
    )


def leef(rng: random.Random, i: int) -> str:
    ts, user, ip, host, up, down, blocked, dst = _pick(rng, i)
    return (
        f"LEEF:2.0|Acme|WebGate|4.2|req|^|devTime={ts}000^src={ip}^usrName={user}^dhost={host}^"
        f"srcBytes={up}^dstBytes={down}^action={'blocked' if blocked else 'allowed'}^dst={dst}"
    )


W3C_FIELDS = (
    "#Fields: date time time-taken c-ip cs-username sc-filter-result cs-categories sc-status"
    " s-action cs-method cs-uri-scheme cs-host cs-uri-port cs-uri-path cs-uri-query cs(User-Agent) s-ip "
    "sc-bytes cs-bytes"
)


def w3c(rng: random.Random, i: int) -> str:
    ts, user, ip, host, up, down, blocked, _dst = _pick(rng, i)
    result, action = ("DENIED", "TCP_DENIED") if blocked else ("OBSERVED", "TCP_NC_MISS")
    line = (
        f'{_stamp(ts, "%Y-%m-%d %H:%M:%S")} {rng.randrange(1, 9999)} {ip} {user} {result} "Cloud'
        f' Storage" 200 '
        f'{action} GET https {host} 443 /p/{i % 977} - "Mozilla/5.0 (X11; Linux x86_64)" 192.0.2.1'
        f" {down} {up}"
    )
    return (W3C_FIELDS + "\n" + line) if i % 100_000 == 0 else line


def zscaler(rng: random.Random, i: int) -> str:
    ts, user, ip, host, up, down, blocked, dst = _pick(rng, i)
    action = "Blocked" if blocked else "Allowed"
    if i % 2:
        return (
            f'{{"sourcetype":"zscalernss-web","event":{{"time":"{_stamp(ts, "%a %b %d %H:%M:%S %Y")}",'
            f'"login":"{user}",'
            f'"eurl":"{host}/p","action":"{action}","reqsize":"{up}","respsize":"{down}","cip":"{ip}",'
            f'"sip":"{dst}"}}}}'
        )
    return (
        f'"{_stamp(ts, "%a %b %d %H:%M:%S %Y")}","{user}","HTTPS","{host}/p","{action}","App","Class",'
        f'"{up}","{down}",'
        f'"0","0","Productivity","Cloud","File","None","None","0","None","None","gw","Eng","{ip}","{dst}",'
        f'"GET","200",'
        '"Mozilla/5.0","None"'
    )


def paloalto(rng: random.Random, i: int) -> str:
    ts, user, ip, host, up, down, blocked, dst = _pick(rng, i)
    t = _stamp(ts, "%Y/%m/%d %H:%M:%S")
    action = "deny" if blocked else "allow"
    if i % 4 == 0:
        return (
            f"Nov  2 09:00:00 PA-3220 1,{t},0132,THREAT,url,2560,{t},{ip},{dst},203.0.113.5,{dst},allow-web,"
            f"corp\\{user},,ssl,vsys1,trust,untrust,e1,e2,fwd,{t},1,1,51001,443,0,0,0x0,tcp,"
            f'{"block-url" if blocked else "alert"},"{host}/p,q?x=1",(9999),online-storage,informational,'
            f"client-to-server"
        )
    return (
        f"1,{t},0132,TRAFFIC,end,2560,{t},{ip},{dst},203.0.113.5,{dst},allow-web,corp\\{user},,web,vsys1,"
        f"trust,"
        f"untrust,e1,e2,fwd,{t},5001,1,51000,443,41000,443,0x400053,tcp,{action},{up + down},{up},{down},"
        f"20,{t},1,"
        "online-storage,0,1,0x0,10.0.0.0-10.255.255.255,United States,0,10,10,tcp-fin"
    )


def fortigate(rng: random.Random, i: int) -> str:
    ts, user, ip, host, up, down, blocked, dst = _pick(rng, i)
    return (
        f"<189>Nov  2 09:00:00 fw01 date={_stamp(ts, '%Y-%m-%d')} time={_stamp(ts, '%H:%M:%S')}"
        f' devname="FGT60F" '
        f'logid="0000000013" type="traffic" subtype="forward" level="notice" srcip={ip}'
        f' srcport=51000 user="{user}" '
        f'dstip={dst} dstport=443 hostname="{host}" action="{"deny" if blocked else "accept"}"'
        f' service="HTTPS" '
        f'sentbyte={up} rcvdbyte={down} app="Web Browsing" msg="traffic allowed by policy"'
    )


def cisco_asa(rng: random.Random, i: int) -> str:
    ts, user, ip, _host, up, down, blocked, dst = _pick(rng, i)
    t = _stamp(ts, "%b %d %Y %H:%M:%S")
    if blocked:
        return (
            f"{t}: %ASA-4-106023: Deny tcp src inside:{ip}/51003 dst outside:{dst}/443 by access-group"
            f' "in" [0x0, 0x0]'
        )
    if i % 2:
        return (
            f"{t}: %ASA-6-302013: Built outbound TCP connection {i} for outside:{dst}/443 ({dst}/443)"
            f" to inside:{ip}/51000 (203.0.113.5/41000)"
        )
    return (
        f"{t}: %ASA-6-302014: Teardown TCP connection {i} for outside:{dst}/443 to"
        f" inside:{ip}/51000(LOCAL\\{user}) duration 0:00:01 bytes {up + down} TCP FINs"
    )


GENERATORS: dict[str, Callable[[random.Random, int], str]] = {
    "squid": squid,
    "cef": cef,
    "leef": leef,
    "w3c": w3c,
    "zscaler": zscaler,
    "paloalto": paloalto,
    "fortigate": fortigate,
    "cisco_asa": cisco_asa,
}


def generate(fmt: str, lines: int, directory: Path) -> Path:
    path = directory / f"{fmt}-{lines}.log"
    if path.exists():
        return path
    rng = random.Random(f"{fmt}-{lines}")
    gen = GENERATORS[fmt]
    partial = path.with_suffix(".part")
    with partial.open("w") as out:
        batch: list[str] = []
        for i in range(lines):
            batch.append(gen(rng, i))
            if len(batch) == 10_000:
                out.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            out.write("\n".join(batch) + "\n")
    partial.rename(path)
    return path


def wc_seconds(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["wc", "-l", str(path)], check=True, capture_output=True)
    return time.perf_counter() - start


def _family_peak_mb() -> float:
    """The peak RSS (``VmHWM``) of this process plus that of each process it started (the parsing helpers
    and multiprocessing's resource tracker), summed: what the processing held at most, bounded above."""

    def peak(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def family(pid: int) -> int:
        total = peak(pid)
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += sum(family(int(c)) for c in (task / "children").read_text().split())
        return total

    if not Path("/proc/self/status").exists():  # not Linux: this process only
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return family(os.getpid()) / 1024 / 1024


def _child(job: bool, path: str, source: str, queue: Any, workers: int) -> None:
    """A measurement in a process of its own; an error is passed back (the caller would wait for ever)."""
    from trustplane.discovery.processing import stop_workers

    try:
        (_measure_job if job else _measure)(path, source, queue, workers)
    except BaseException:
        stop_workers(wait=False)
        queue.put({"error": traceback.format_exc()})
        raise


def _measure(path: str, source: str, queue: Any, workers: int) -> None:
    from trustplane.discovery.catalog import shipped_catalog
    from trustplane.discovery.parsers import ParseStats, parser_for
    from trustplane.discovery.processing import process_slice, start_workers, stop_workers
    from trustplane.discovery.service import SLICE_LINES

    catalog = shipped_catalog()
    parser = parser_for(source)
    stats = ParseStats()
    # The helpers start once per process (a long-lived job worker starts them with its first large slice);
    # their start is timed apart from the file.
    pool_start = start_workers(workers)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    offset, app_rows = 0, 0
    while True:  # slices as the processing job runs them; their sums would go to the database
        result = process_slice(
            Path(path),
            parser,
            stats,
            catalog,
            start_offset=offset,
            max_lines=SLICE_LINES,
            max_seconds=1e9,
            workers=workers,
        )
        offset, app_rows = result.end_offset, app_rows + result.apps.height
        if result.finished:
            break
    elapsed = time.perf_counter() - start
    rss_mb = _family_peak_mb()
    stop_workers()  # a multiprocessing child joins its children before the pool's exit hook would stop them
    queue.put(
        {
            "seconds": elapsed,
            "lines": stats.lines_read,
            "parsed": stats.parsed,
            "rejected": stats.rejected,
            "app_rows": app_rows,
            "rss_mb": rss_mb,
            "rss_before_mb": rss_before / 1024,
            "pool_start_s": pool_start,
        }
    )


def process(path: Path, source: str, *, job: bool = False, workers: int = 1) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(job, str(path), source, queue, workers))
    child.start()
    while True:  # a child that died without a word (a signal) must not leave the run waiting for ever
        try:
            result: dict[str, Any] = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not child.is_alive():
                ended = f"the process ended ({child.exitcode}) without a result"
                raise RuntimeError(f"processing {path.name}: {ended}") from None
    child.join()
    if "error" in result:
        raise RuntimeError(f"processing {path.name} failed:\n{result['error']}")
    return result


def _measure_job(path: str, source: str, queue: Any, workers: int) -> None:
    """The processing job's own path: ``service.process_next_slice`` slice after slice, each committing its
    sums and checkpoint to a temporary SQLite database, as ``trustplane worker`` runs it."""
    import asyncio

    import sqlalchemy as sa

    from trustplane.auth.keys import KeyStore
    from trustplane.bootstrap import ensure_ready
    from trustplane.core.clock import utcnow
    from trustplane.core.db import Database
    from trustplane.directory.service import create_tenant
    from trustplane.discovery.models import DiscoveryStream, DiscoveryUpload
    from trustplane.discovery.processing import start_workers, stop_workers
    from trustplane.discovery.service import process_next_slice

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="bench_discovery_db_") as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db", pool_size=5)
            keys = KeyStore(3600)
            await ensure_ready(db, keys)
            async with db.session() as session:
                tenant = await create_tenant(session, keys, name="Bench", domain="bench.example.com")
                stream = DiscoveryStream(tenant_id=tenant.id, name="bench", is_snapshot=True)
                session.add(stream)
                await session.flush()
                upload = DiscoveryUpload(
                    tenant_id=tenant.id,
                    filename=Path(path).name,
                    source=source,
                    token_hash="-",  # noqa: S106  (no signed-URL PUT here: the file is already on disk)
                    path=path,
                    status="processing",
                    stream_id=stream.id,
                    expires_at=utcnow(),
                )
                session.add(upload)
                await session.flush()
                tenant_id, upload_id, stream_id = tenant.id, upload.id, stream.id
            pool_start = start_workers(workers)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            while True:
                async with db.session() as session:
                    if await process_next_slice(session, tenant_id, upload_id, workers=workers):
                        break
            elapsed = time.perf_counter() - start
            async with db.session() as session:
                stats = (
                    await session.execute(
                        sa.select(DiscoveryUpload.stats).where(DiscoveryUpload.id == upload_id)
                    )
                ).scalar_one()
                rows = (
                    await session.execute(
                        sa.text("SELECT count(*) FROM discovery_aggregates WHERE stream_id = :s"),
                        {"s": stream_id},
                    )
                ).scalar_one()
            await db.dispose()
        rss_mb = _family_peak_mb()
        stop_workers()
        return {
            "seconds": elapsed,
            "lines": stats["linesRead"],
            "parsed": stats["parsed"],
            "rejected": stats["rejected"],
            "app_rows": rows,
            "rss_mb": rss_mb,
            "rss_before_mb": rss_before / 1024,
            "pool_start_s": pool_start,
        }

    queue.put(asyncio.run(run()))


def write_big_squid(path: Path, size_bytes: int) -> int:
    """Squid lines with long query strings (trackers, signed links), written in pieces of 4,000 lines until
    the file reaches ``size_bytes``; never held whole. Returns the line count."""
    hosts = HOSTS
    lines = written = 0
    with path.open("w") as out:
        while written < size_bytes:
            piece = "".join(
                f"{START + i // 50}.{i % 1000:03d} {i % 977:6d} 10.{i % 4}.{i % 251}.{i % 7 + 1} "
                f"{'TCP_DENIED/403' if i % 29 == 0 else 'TCP_MISS/200'} {i % 9000} GET "
                f"https://{hosts[i % len(hosts)]}/p/{i % 13}?q={i:012d}{'x' * (1200 + i % 800)} "
                f"user{i % 2000} HIER_DIRECT/198.51.100.{i % 200} -\n"
                for i in range(lines, lines + 4000)
            )
            out.write(piece)
            written += len(piece)
            lines += 4000
    return lines


def big_file(gigabytes: float, directory: Path, workers: int) -> None:
    """Show point 6 at the issue's size: a ``gigabytes`` GB file processed in job slices in a child process
    whose peak RSS is reported; the file is generated here and deleted after."""
    path = directory / f"big-{gigabytes:g}gb-squid.log"
    start = time.perf_counter()
    lines = write_big_squid(path, int(gigabytes * 1e9))
    size = path.stat().st_size
    generated = time.perf_counter() - start
    try:
        wc = wc_seconds(path)
        run = process(path, "SQUID", job=True, workers=workers)
    finally:
        path.unlink(missing_ok=True)
    print(
        f"big file: {size / 1e9:.2f} GB, {lines:,} lines (mean {size / lines:,.0f} B; generated in"
        f" {generated:.0f} s): processed in {run['seconds']:.0f} s = {lines / run['seconds']:,.0f} lines/s,"
        f" {size / 1e6 / run['seconds']:.1f} MB/s (wc -l {size / 1e6 / wc:,.0f} MB/s); parsed"
        f" {run['parsed']:,}, rejected {run['rejected']:,}, {run['app_rows']:,} aggregate rows in SQLite;"
        f" peak RSS {run['rss_mb']:.0f} MB with its {workers - 1} helper process(es)"
        f" ({'under' if run['rss_mb'] * 1024 * 1024 < 1e9 else 'OVER'} 1 GB)"
    )


def pycef_rate(path: Path, limit: int) -> tuple[float, int]:
    import pycef

    parsed = 0
    with path.open() as f:
        lines = [line for _, line in zip(range(limit), f, strict=False)]
    start = time.perf_counter()
    for line in lines:
        try:
            pycef.parse(line)
            parsed += 1
        except Exception:  # noqa: S112  (pycef raises on an escaped pipe in the header; counted, not fatal)
            continue
    return len(lines) / (time.perf_counter() - start), parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5_000_000, help="lines per generated file")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (100k lines)")
    parser.add_argument("--formats", default=",".join(GENERATORS), help="comma-separated formats")
    parser.add_argument("--pycef-lines", type=int, default=500_000, help="lines pycef parses (it is slow)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to keep generated files (default: temp)"
    )
    parser.add_argument(
        "--no-small", action="store_true", help="skip the 1/10-size run (memory growth check)"
    )
    parser.add_argument(
        "--big-gb", type=float, default=5.0, help="size of the one-file memory run in GB (0: skip it)"
    )
    parser.add_argument(
        "--job", action="store_true", help="run every format through the job path with database writes too"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes parsing a file (0: as the job worker decides, one per CPU; 1: one process)",
    )
    parser.add_argument(
        "--polars-too",
        action="store_true",
        help="run Squid, CEF and W3C a second time with polars alone (no C tokeniser)",
    )
    args = parser.parse_args()
    from trustplane.discovery.parsers import native
    from trustplane.discovery.processing import worker_count

    workers = worker_count(args.workers)
    lines = 100_000 if args.quick else args.lines
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench_discovery_"))
    directory.mkdir(parents=True, exist_ok=True)
    formats = [f for f in args.formats.split(",") if f]
    print(
        f"# cloud discovery, {lines:,} lines per file, {workers} parsing process(es) per file, load average"
        f" {os.getloadavg()[0]:.2f}, {directory}; RSS: the peak of the process and its helpers, summed;"
        f" C tokeniser {'on' if native.available() else 'off (not built or TRUSTPLANE_NATIVE_TOKENS=0)'}"
    )
    print(f"{'format':<10} {'MB':>8} {'lines/s':>11} {'MB/s':>7} {'wc -l MB/s':>11} {'x floor':>8} "
          f"{'rejected':>9} {'RSS MB':>7} {'RSS MB @1/10':>13}")  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    pycef_runs: list[tuple[float, int]] = []
    for fmt in formats:
        path = generate(fmt, lines, directory)
        size_mb = path.stat().st_size / 1e6
        wc = min(wc_seconds(path) for _ in range(3))
        if fmt == "cef":  # the peer right before (and after) TrustPlane's runs: a shared machine drifts
            pycef_runs.append(pycef_rate(path, min(lines, args.pycef_lines)))
        run = process(path, SOURCES[fmt], job=args.job, workers=workers)
        small_rss = "-"
        if not args.no_small and lines >= 100_000:
            small = process(generate(fmt, lines // 10, directory), SOURCES[fmt], workers=workers)
            small_rss = f"{small['rss_mb']:.0f}"
        rate = run["lines"] / run["seconds"]
        mbps = size_mb / run["seconds"]
        results[fmt] = {**run, "rate": rate, "mbps": mbps}
        print(
            f"{fmt:<10} {size_mb:>8.0f} {rate:>11,.0f} {mbps:>7.1f} {size_mb / wc:>11.0f} "
            f"{(size_mb / wc) / mbps:>7.0f}x {run['rejected']:>9,} {run['rss_mb']:>7.0f} {small_rss:>13}"
        )
        if args.polars_too and fmt in ("squid", "cef", "w3c") and native.available():
            os.environ["TRUSTPLANE_NATIVE_TOKENS"] = "0"  # read by the spawned process at import
            try:
                other = process(path, SOURCES[fmt], job=args.job, workers=workers)
            finally:
                del os.environ["TRUSTPLANE_NATIVE_TOKENS"]
            other_rate = other["lines"] / other["seconds"]
            other_mbps = size_mb / other["seconds"]
            results[f"{fmt} (polars)"] = {**other, "rate": other_rate}
            print(
                f"{fmt + ' (polars)':<10} {size_mb:>8.0f} {other_rate:>11,.0f} {other_mbps:>7.1f}"
                f" {'':>11} {'':>8} {other['rejected']:>9,} {other['rss_mb']:>7.0f} {'-':>13}"
                f"   C tokeniser: {rate / other_rate:.2f}x"
            )
        if fmt == "cef":
            pycef_runs.append(pycef_rate(path, min(lines, args.pycef_lines)))
    if results and workers > 1:
        started = max(r["pool_start_s"] for r in results.values())
        print(f"helper processes started in up to {started:.2f} s, once per process (not in the figures)")
    if pycef_runs:
        rate = sum(r for r, _ in pycef_runs) / len(pycef_runs)
        parsed = pycef_runs[0][1]
        ours = results["cef"]["rate"]
        print(
            f"pycef: {rate:,.0f} lines/s parsing only, the mean of {len(pycef_runs)} runs around TrustPlane's"
            f" ({', '.join(f'{r:,.0f}' for r, _ in pycef_runs)}; {parsed:,} of"
            f" {min(lines, args.pycef_lines):,} lines parsed without an exception)\n"
            f"TrustPlane CEF end to end {ours:,.0f} lines/s = {ours / rate:.1f}x pycef"
        )
        if "cef (polars)" in results:
            theirs = results["cef (polars)"]["rate"]
            print(f"  (with polars alone: {theirs:,.0f} lines/s = {theirs / rate:.1f}x pycef)")
    if args.big_gb > 0 and not args.quick:
        big_file(args.big_gb, directory, workers)
    if args.dir is None:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
