"""Turning a stored log file into aggregates, one slice at a time. Pure computation (no database): a slice
reads from a byte offset until a line or time budget, parses in columnar batches, matches destinations to
catalogue apps and sums per app, user, IP and day, plus unmatched destinations. The caller commits the sums
together with the new offset, so a slice counts either fully or not at all."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from trustplane.discovery.catalog import Catalog, registrable_domain
from trustplane.discovery.parsers import LogParser, ParseStats, parse_stream

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
    return apps, unmatched


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
) -> SliceResult:
    """Parse from ``start_offset`` until the file ends or a budget runs out (checked between batches).
    ``stats`` and ``parser`` advance with it; the caller persists them with the result."""
    deadline = time.monotonic() + max_seconds
    apps: list[pl.DataFrame] = [_empty_apps()]
    unmatched: list[pl.DataFrame] = [_empty_unmatched()]
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
            a, u = summarise(batch.frame, catalog)
            apps.append(a)
            unmatched.append(u)
            offset = batch.end_offset
            lines += batch.lines
            if len(apps) > 64:  # keep the partial sums small
                apps = [_merge(apps, APP_KEYS)]
                unmatched = [_merge(unmatched, UNMATCHED_KEYS)]
            if lines >= max_lines or time.monotonic() >= deadline:
                # the reader reads ahead in blocks: the slice ends at its last batch, not where the stream is
                finished = offset >= os.fstat(stream.fileno()).st_size
                break
    return SliceResult(
        end_offset=offset,
        finished=finished,
        apps=_merge(apps, APP_KEYS),
        unmatched=_merge(unmatched, UNMATCHED_KEYS),
        lines=lines,
        parser_state=parser.state(),
    )
