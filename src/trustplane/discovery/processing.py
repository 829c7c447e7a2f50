"""Turning a stored log file into aggregates, one slice at a time. Pure computation (no database): a slice
reads from a byte offset until a line or time budget, parses in columnar batches, matches destinations to
catalogue apps and sums per app, user, IP and day, plus unmatched destinations. The caller commits the sums
together with the new offset, so a slice counts either fully or not at all.

A large slice is parsed by several processes (``workers``: this one and spawned helpers) in ranges of whole
lines: the ranges go out in file order and their sums and stats are counted in that order, so the result
equals one process's. A
parser qualifies when its state after a range can be found without parsing it (``LogParser.state_after``:
no state, or W3C's last ``#Fields`` line); any other parser, a small slice, or a broken pool runs here."""

from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from trustplane.discovery.catalog import Catalog, registrable_domain, shipped_catalog
from trustplane.discovery.parsers import LogParser, ParseStats, parse_stream
from trustplane.discovery.parsers.base import BLOCK_BYTES, MAX_LINE_BYTES, TOO_LONG

SUMS = ("transactions", "blocked", "bytes_up", "bytes_down", "traffic")
APP_KEYS = ("app_id", "user_name", "ip_address", "day")
UNMATCHED_KEYS = ("destination", "day")


@dataclass
class SliceResult:
    end_offset: int
    finished: bool
    apps: pl.DataFrame
    unmatched: pl.DataFrame
    lines: int = 0
    parser_state: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=65536)
def _destination(host: str) -> str:
    return registrable_domain(host) or host


def summarise(frame: pl.DataFrame, catalog: Catalog) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One batch's records → (app sums, unmatched sums). Hosts are matched once per distinct value."""
    if frame.height == 0:
        return _empty_apps(), _empty_unmatched()
    hosts = frame.get_column("dest_host").drop_nulls().unique().to_list()
    app_ids: list[str | None] = []
    destinations: list[str | None] = []
    for host in hosts:
        app = catalog.match(host)
        app_ids.append(app.id if app is not None else None)
        destinations.append(None if app is not None else _destination(host))
    # Each row's host as its index among the distinct hosts (one hash per row), then both answers by index.
    code = pl.col("dest_host").cast(pl.Enum(hosts)).to_physical()
    enriched = frame.with_columns(code.alias("host_code")).select(
        pl.lit(pl.Series(app_ids, dtype=pl.String)).gather("host_code").alias("app_id"),
        pl.coalesce(pl.lit(pl.Series(destinations, dtype=pl.String)).gather("host_code"), pl.col("dest_ip"))
        .alias("destination"),
        pl.col("user").fill_null("").alias("user_name"),
        pl.col("source_ip").fill_null("").alias("ip_address"),
        pl.col("time").dt.date().alias("day"),
        pl.lit(1, pl.Int64).alias("transactions"),
        pl.col("blocked").cast(pl.Int64).alias("blocked"),
        pl.col("bytes_up").fill_null(0).alias("bytes_up"),
        pl.col("bytes_down").fill_null(0).alias("bytes_down"),
        pl.coalesce(
            pl.col("bytes_total"), pl.col("bytes_up").fill_null(0) + pl.col("bytes_down").fill_null(0)
        ).alias("traffic"),
    )  # fmt: skip
    apps = enriched.filter(pl.col("app_id").is_not_null()).group_by(APP_KEYS).agg(pl.sum(*SUMS))
    unmatched = (
        enriched.filter(pl.col("app_id").is_null() & pl.col("destination").is_not_null())
        .group_by(UNMATCHED_KEYS)
        .agg(pl.sum(*SUMS))
    )
    return _compact(apps), _compact(unmatched)


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its string columns copied into buffers of their own. Partial sums outlive their batch,
    and a string taken from a line (a view into the block the line was read from) would keep that whole
    block in memory: 8 MB held for a 14-byte IP address."""
    strings = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not strings or frame.height == 0:
        return frame
    return frame.with_columns(
        pl.Series(name, pl.from_arrow(frame.get_column(name).to_arrow())) for name in strings
    )


def _empty_apps() -> pl.DataFrame:
    schema: dict[str, Any] = {
        "app_id": pl.String,
        "user_name": pl.String,
        "ip_address": pl.String,
        "day": pl.Date,
    }
    return pl.DataFrame(schema={**schema, **dict.fromkeys(SUMS, pl.Int64)})


def _empty_unmatched() -> pl.DataFrame:
    schema: dict[str, Any] = {"destination": pl.String, "day": pl.Date}
    return pl.DataFrame(schema={**schema, **dict.fromkeys(SUMS, pl.Int64)})


def _merge(frames: list[pl.DataFrame], keys: tuple[str, ...]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical").group_by(keys).agg(pl.sum(*SUMS))


class _Sums:
    """Partial sums of apps and unmatched destinations as batches or ranges add them, merged every 64 parts
    to keep them small."""

    def __init__(self) -> None:
        self.apps: list[pl.DataFrame] = [_empty_apps()]
        self.unmatched: list[pl.DataFrame] = [_empty_unmatched()]

    def add(self, apps: pl.DataFrame, unmatched: pl.DataFrame) -> None:
        self.apps.append(apps)
        self.unmatched.append(unmatched)
        if len(self.apps) > 64:
            self.apps = [_merge(self.apps, APP_KEYS)]
            self.unmatched = [_merge(self.unmatched, UNMATCHED_KEYS)]

    def merged(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        return _merge(self.apps, APP_KEYS), _merge(self.unmatched, UNMATCHED_KEYS)


def process_slice(
    path: Path,
    parser: LogParser,
    stats: ParseStats,
    catalog: Catalog,
    *,
    start_offset: int,
    max_lines: int = 1_000_000,
    max_seconds: float = 10.0,
    batch_lines: int = 65536,
    block_bytes: int = 0,
    workers: int = 1,
    parallel_min_bytes: int = 0,
) -> SliceResult:
    """Parse from ``start_offset`` until the file ends or a budget runs out (checked between batches, or
    between ranges in parallel). ``stats`` and ``parser`` advance with it; the caller persists them with the
    result. ``workers`` > 1: that many processes parse the slice when at least ``parallel_min_bytes`` (default
    ``PARALLEL_MIN_BYTES``) of the file remain, the catalogue is the shipped one and the parser qualifies."""
    deadline = time.monotonic() + max_seconds
    if workers > 1 and catalog is shipped_catalog():
        size = os.path.getsize(path)
        qualifies = parser.state_after(b"", 0, 0, parser.state()) is not None
        if qualifies and size - start_offset >= (parallel_min_bytes or PARALLEL_MIN_BYTES):
            result = _parallel_slice(
                path,
                parser,
                stats,
                start_offset=start_offset,
                size=size,
                max_lines=max_lines,
                deadline=deadline,
                batch_lines=batch_lines,
                block_bytes=block_bytes,
                workers=workers,
            )
            if result is not None:
                return result
    sums = _Sums()
    offset = start_offset
    lines = 0
    finished = True
    with path.open("rb") as stream:
        for batch in parse_stream(
            stream,
            parser,
            stats,
            start_offset=start_offset,
            batch_lines=batch_lines,
            columnar=True,
            block_bytes=block_bytes,
        ):
            assert batch.frame is not None
            sums.add(*summarise(batch.frame, catalog))
            offset = batch.end_offset
            lines += batch.lines
            if lines >= max_lines or time.monotonic() >= deadline:
                # the reader reads ahead in blocks: the slice ends at its last batch, not where the stream is
                finished = offset >= os.fstat(stream.fileno()).st_size
                break
    apps, unmatched = sums.merged()
    return SliceResult(
        end_offset=offset, finished=finished, apps=apps, unmatched=unmatched, lines=lines,
        parser_state=parser.state(),
    )  # fmt: skip


# ---- worker processes ----------------------------------------------------------------------------------

# A slice with less than this left of its file is parsed in the job's own process.
PARALLEL_MIN_BYTES = 4 * BLOCK_BYTES
# Bytes per worker task. A worker's peak memory grows with it (about 25 MB per MB of range on Squid lines
# with long URLs); smaller ranges cost a task's overhead (about a millisecond) more often.
RANGE_BYTES = 4 * 1024 * 1024


def worker_count(setting: int = 0) -> int:
    """Processes parsing a large upload: ``setting`` when positive, else one per CPU this process may use."""
    if setting > 0:
        return setting
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def _workers(size: int) -> ProcessPoolExecutor:
    """The process's pool of ``size`` workers, started on first use and kept (spawned, not forked: the
    job's process has threads, polars' among them)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = ProcessPoolExecutor(
                size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
            _pool_size = size
        return _pool


def _start_worker(parent: int) -> None:
    """A worker's start: the catalogue loaded (and with it this module's imports) before the first task,
    and a watch on the parent: a worker whose parent died (a job process killed) exits instead of waiting
    for tasks forever (the pool's queues never tell it)."""
    shipped_catalog()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def start_workers(workers: int) -> float:
    """Start the helpers a slice with ``workers`` processes uses (``workers`` - 1) now rather than with the
    first large slice; the seconds taken."""
    started = time.perf_counter()
    if workers > 1:
        list(_workers(workers - 1).map(abs, range(workers * 4)))
    return time.perf_counter() - started


def worker_pids() -> list[int]:
    """The pool's worker processes (their peak memory is part of a job's)."""
    with _pool_lock:
        processes = getattr(_pool, "_processes", None) or {}
        return sorted(int(pid) for pid in processes)


def stop_workers(*, wait: bool = True) -> None:
    """Stop the helpers (``wait``: until they have exited; a broken pool is dropped without waiting). A
    process that is itself a ``multiprocessing`` child must call it before it ends: such a process joins its
    children before the pool's own exit hook runs."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


def ranges(
    data: Any, start: int, size: int, block: int, limit: int = MAX_LINE_BYTES
) -> Iterator[tuple[bool, int, int]]:
    """``data[start:size]`` (bytes or an mmap) as ``(too long, start, end)``: ranges of whole lines of
    about ``block`` bytes (never more than ``block`` + ``limit`` + 1), and each line over ``limit`` bytes
    that a range would begin with, on its own (``too long``: read by nobody, as ``parse_stream`` skips it).
    ``block`` is more than ``limit``."""
    while start < size:
        if data.find(b"\n", start, min(size, start + limit + 1)) < 0 and size - start > limit:
            nl = data.find(b"\n", start)
            end = size if nl < 0 else nl + 1
            yield True, start, end
            start = end
            continue
        target = start + block
        if target >= size:
            yield False, start, size
            return
        window = min(size, target + limit + 1)
        nl = data.find(b"\n", target, window)
        if nl >= 0:
            end = nl + 1
        elif window == size:
            end = size
        else:  # the line across ``target`` is over the limit: the range ends before it
            end = data.rfind(b"\n", start, target) + 1
        yield False, start, end
        start = end


def _parse_range(
    path: str, start: int, end: int, parser: LogParser, state: dict[str, Any], batch_lines: int
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """A worker's task: one range of whole lines parsed and summed from the parser state it begins in."""
    parser.restore(state)
    stats = ParseStats()
    with open(path, "rb") as handle:
        data = os.pread(handle.fileno(), end - start, start)
    catalog = shipped_catalog()
    sums = _Sums()
    stream = io.BytesIO(data)
    for batch in parse_stream(
        stream, parser, stats, batch_lines=batch_lines, columnar=True, block_bytes=len(data)
    ):
        assert batch.frame is not None
        sums.add(*summarise(batch.frame, catalog))
    return *sums.merged(), stats.to_dict()


def _parallel_slice(
    path: Path,
    parser: LogParser,
    stats: ParseStats,
    *,
    start_offset: int,
    size: int,
    max_lines: int,
    deadline: float,
    batch_lines: int,
    block_bytes: int,
    workers: int,
) -> SliceResult | None:
    """``process_slice`` by ``workers`` processes: this one and ``workers`` - 1 helpers (each helper's
    peak memory is about that of a parsing process, so this one takes its share rather than idle). A range
    goes to a helper while the helpers have fewer than two each in hand, else this process parses it; the
    results are counted in file order. None (nothing changed) when the pool failed, for the caller to parse
    the slice itself. The budget is checked as ranges are counted: a slice ends after the ranges already
    handed out."""
    block = max(block_bytes or RANGE_BYTES, MAX_LINE_BYTES + 1)
    helpers = workers - 1
    local = ParseStats.from_dict(stats.to_dict())  # ``stats`` changes only when the slice is complete
    state = parser.state()
    sums = _Sums()
    # (end offset, a helper's task, a result parsed here, or None: one line over the limit), in file order
    out: deque[tuple[int, Any]] = deque()
    offset = start_offset
    lines = 0

    def count() -> None:
        nonlocal offset, lines
        end, item = out.popleft()
        if item is None:
            local.lines_read += 1
            local.reject(local.lines_read, "", TOO_LONG)
            part_lines = 1
        else:
            a, u, part = item.result() if isinstance(item, Future) else item
            part_stats = ParseStats.from_dict(part)
            local.add(part_stats)
            part_lines = part_stats.lines_read
            sums.add(a, u)
        offset = end
        lines += part_lines

    def ready() -> bool:
        item = out[0][1]
        return not isinstance(item, Future) or item.done()

    try:
        pool = _workers(helpers)
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for too_long, start, end in ranges(data, start_offset, size, block):
                if too_long:
                    out.append((end, None))
                else:
                    in_hand = sum(1 for _, item in out if isinstance(item, Future) and not item.done())
                    if in_hand < 2 * helpers:
                        task = pool.submit(_parse_range, str(path), start, end, parser, state, batch_lines)
                        out.append((end, task))
                    else:
                        out.append((end, _parse_range(str(path), start, end, parser, state, batch_lines)))
                    state = parser.state_after(data, start, end, state) or {}
                while out and (ready() or len(out) > 4 * helpers + 2):
                    count()
                if lines >= max_lines or time.monotonic() >= deadline:
                    break
            while out:
                count()
    except Exception:  # a helper died or could not be started: this process parses the slice alone
        for _, item in out:
            if isinstance(item, Future):
                item.cancel()
        stop_workers(wait=False)
        return None
    parser.restore(state)
    for name in ("lines_read", "parsed", "rejected", "reasons", "samples"):
        setattr(stats, name, getattr(local, name))
    apps, unmatched = sums.merged()
    return SliceResult(
        end_offset=offset, finished=offset >= size, apps=apps, unmatched=unmatched, lines=lines,
        parser_state=parser.state(),
    )  # fmt: skip
