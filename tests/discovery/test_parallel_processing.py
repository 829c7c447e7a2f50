"""A large slice parsed by several processes (``processing.process_slice`` with ``workers`` > 1) gives exactly
what one process gives: the same sums, stats (reject samples and their line numbers included), end offset and
parser state — across range boundaries, W3C ``#Fields`` changes, over-long and undecodable lines — and a
broken pool costs nothing but speed. The ranges are small here (one block = the line limit + 1) so that a
file of a few hundred kilobytes crosses many of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustplane.discovery import processing
from trustplane.discovery.catalog import shipped_catalog
from trustplane.discovery.parsers import ParseStats, parser_for
from trustplane.discovery.parsers.base import MAX_LINE_BYTES, Rejection
from trustplane.discovery.parsers.w3c import W3cParser

BLOCK = MAX_LINE_BYTES + 1  # the smallest block: many ranges in a small file
HOSTS = ["www.dropbox.com", "app.slack.com", "mega.nz", "github.com", "cdn.unlisted-share.net", "zoom.us"]
W3C_FIELDS = (
    "#Fields: date time time-taken c-ip cs-username sc-filter-result cs-categories sc-status s-action "
    "cs-method cs-uri-scheme cs-host cs-uri-port cs-uri-path cs-uri-query cs(User-Agent) s-ip sc-bytes "
    "cs-bytes"
)
W3C_SHORT = "#Fields: date time c-ip cs-username cs-host sc-bytes cs-bytes"
LONG = "x" * (MAX_LINE_BYTES + 500)


def squid_line(i: int) -> str:
    code = "TCP_DENIED/403" if i % 29 == 0 else "TCP_MISS/200"
    if i % 7 == 0:
        return f"{1793610000 + i}.{i % 1000:03d} {i % 977:6d} 10.0.{i % 251}.{i % 7 + 1} {code} {i} CONNECT {HOSTS[i % 6]}:443 user{i % 41} HIER_DIRECT/198.51.100.{i % 200} -"  # noqa: E501
    return f"{1793610000 + i}.{i % 1000:03d} {i % 977:6d} 10.0.{i % 251}.{i % 7 + 1} {code} {i} GET https://{HOSTS[i % 6]}/p/{i % 13} user{i % 41} HIER_DIRECT/198.51.100.{i % 200} text/html"  # noqa: E501


def cef_line(i: int) -> str:
    extra = "request=https://mega.nz/q?a\\=1&b\\=2" if i % 50 == 0 else f"request=https://{HOSTS[i % 6]}/x"
    return (
        f"<134>Nov  2 09:00:00 gw01 CEF:0|Acme|WebGate|4.2|100|Web request|3|rt={1793610000 + i}000 "
        f"src=10.1.{i % 251}.{i % 9 + 1} suser=user{i % 37} dhost={HOSTS[i % 6]} {extra} out={i} in={2 * i} "
        f"act={'blocked' if i % 31 == 0 else 'allowed'} dst=198.51.{i % 255}.9 msg=seen by the gateway"
    )


def w3c_line(i: int, short: bool) -> str:
    day = f"2026-11-0{1 + i % 5} 09:{i % 60:02d}:{i % 59:02d}"
    if short:
        return f"{day} 10.2.{i % 251}.4 user{i % 23} {HOSTS[i % 6]} {i} {3 * i}"
    return (
        f'{day} {i % 999} 10.3.{i % 251}.8 user{i % 29} OBSERVED "Cloud Storage" 200 TCP_NC_MISS GET https '
        f'{HOSTS[i % 6]} 443 /p/{i % 97} - "Mozilla/5.0 (X11; Linux x86_64)" 192.0.2.1 {i} {2 * i}'
    )


def odd_lines(i: int) -> list[str]:
    """Every so often, lines the per-line path must handle: over the limit, blank, undecodable, CRLF."""
    if i % 997 == 0:
        return [LONG]
    if i % 1231 == 0:
        return ["", "garbage that is no log line"]
    if i % 1409 == 0:
        return ["\udcff broken utf-8 here"]
    return []


def write(path: Path, lines: list[str], *, final_newline: bool = True) -> Path:
    data = b"\n".join(line.encode("utf-8", "surrogateescape") for line in lines)
    path.write_bytes(data + (b"\n" if final_newline else b""))
    return path


def squid_file(path: Path, n: int = 8000) -> Path:
    lines: list[str] = []
    for i in range(n):
        lines += odd_lines(i)
        lines.append(squid_line(i) + ("\r" if i % 13 == 0 else ""))
    return write(path, lines, final_newline=False)


def cef_file(path: Path, n: int = 5000) -> Path:
    lines: list[str] = []
    for i in range(n):
        lines += odd_lines(i)
        lines.append(cef_line(i))
    return write(path, lines)


def w3c_file(path: Path, n: int = 6000) -> Path:
    """``#Fields`` changing every few hundred lines (twice in a row, indented once), a data line that holds
    "#Fields:" in a value, a ``#Fields`` line over the limit (never read, so it changes nothing)."""
    lines: list[str] = ["#Software: gateway", W3C_FIELDS]
    short = False
    for i in range(n):
        lines += odd_lines(i)
        if i % 443 == 0 and i:
            short = not short
            lines.append(("   " if i % 2 else "") + (W3C_SHORT if short else W3C_FIELDS))
        if i % 887 == 0 and i:
            lines.append("#Fields: " + " ".join(["cs-host"] * 9000))  # over the limit: skipped
        if i % 611 == 0 and not short:
            lines.append(w3c_line(i, short).replace("/p/", "/#Fields:/"))
        lines.append(w3c_line(i, short))
    return write(path, lines)


FORMATS = {"SQUID": squid_file, "GENERIC_CEF": cef_file, "BLUECOAT": w3c_file}


def sorted_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


def run(path: Path, source: str, *, workers: int, max_lines: int = 10**9) -> dict[str, Any]:
    """The whole file in slices of ``max_lines``: summed sums, stats, each slice's end, the final state."""
    parser = parser_for(source)
    stats = ParseStats()
    offset, ends, apps, unmatched = 0, [], [], []
    while True:
        result = processing.process_slice(
            path,
            parser,
            stats,
            shipped_catalog(),
            start_offset=offset,
            max_lines=max_lines,
            max_seconds=1e9,
            batch_lines=1000,
            block_bytes=BLOCK,
            workers=workers,
            parallel_min_bytes=1,
        )
        assert result.end_offset > offset or result.finished
        offset = result.end_offset
        ends.append(offset)
        apps.append(result.apps)
        unmatched.append(result.unmatched)
        if result.finished:
            break
    assert offset == path.stat().st_size
    return {
        "apps": sorted_frame(processing._merge(apps, processing.APP_KEYS)),
        "unmatched": sorted_frame(processing._merge(unmatched, processing.UNMATCHED_KEYS)),
        "stats": stats.to_dict(),
        "state": parser.state(),
        "ends": ends,
    }


@pytest.fixture(scope="module", autouse=True)
def pool() -> None:
    processing.start_workers(2)


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("source", sorted(FORMATS))
def test_worker_processes_give_what_one_process_gives(source: str, workers: int, tmp_path: Path) -> None:
    path = FORMATS[source](tmp_path / f"{source}.log")
    assert path.stat().st_size > 8 * BLOCK, "the file must span many ranges"
    alone = run(path, source, workers=1)
    processing.start_workers(workers)
    together = run(path, source, workers=workers)
    assert together["stats"] == alone["stats"]
    assert together["state"] == alone["state"]
    assert together["apps"].equals(alone["apps"]) and together["unmatched"].equals(alone["unmatched"])
    stats = alone["stats"]
    assert stats["parsed"] + stats["rejected"] == stats["linesRead"]
    assert stats["rejectReasons"]["line too long"] >= 4 and alone["apps"].height > 0
    # in slices, the parallel run ends each slice after whole ranges and still adds up to the same report. A
    # slice hands out at most 4 * helpers + 3 ranges (the one that meets the budget and those in flight), each
    # at most two blocks: a larger file has two slices or more, however fast the helpers run.
    per_slice = (4 * (workers - 1) + 3) * 2 * BLOCK
    assert path.stat().st_size > per_slice, "the file must span several slices"
    sliced = run(path, source, workers=workers, max_lines=1)
    assert len(sliced["ends"]) >= 2
    assert sliced["stats"] == alone["stats"] and sliced["state"] == alone["state"]
    assert sliced["apps"].equals(alone["apps"]) and sliced["unmatched"].equals(alone["unmatched"])


def test_a_parser_whose_state_needs_parsing_stays_in_one_process(tmp_path: Path) -> None:
    from trustplane.discovery.parsers import CustomFormat, CustomParser

    fmt = CustomFormat.from_dict({"kind": "delimited", "fields": {"time": "t", "dest_host": "host"}})
    parser = CustomParser(fmt)
    assert parser.state_after(b"", 0, 0, parser.state()) is None
    path = write(
        tmp_path / "custom.csv", ["t,host"] + [f"2026-11-02 09:00:00,{HOSTS[i % 6]}" for i in range(50)]
    )
    before = processing.worker_pids()
    stats = ParseStats()
    result = processing.process_slice(
        path, parser, stats, shipped_catalog(), start_offset=0, workers=2, parallel_min_bytes=1
    )
    assert result.finished and stats.parsed == 50 and stats.rejected == 1  # the header row
    assert int(result.apps["transactions"].sum()) + int(result.unmatched["transactions"].sum()) == 50
    assert processing.worker_pids() == before


def test_a_broken_pool_costs_only_speed(tmp_path: Path) -> None:
    path = squid_file(tmp_path / "squid.log")
    alone = run(path, "SQUID", workers=1)
    processing.start_workers(2)
    for pid in processing.worker_pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    after = run(path, "SQUID", workers=2)  # the first slice finds the pool broken and parses here
    assert after["stats"] == alone["stats"] and after["apps"].equals(alone["apps"])
    processing.start_workers(2)  # a new pool (one helper) for whatever follows
    assert len(processing.worker_pids()) == 1


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from trustplane.discovery import processing
        processing.start_workers(3)
        print(" ".join(map(str, processing.worker_pids())), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "orphaned workers must not outlive a killed job process"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@given(
    st.lists(
        st.sampled_from([b"a b\n", b"\n", b"ccccccc\n", b"d" * 9 + b"\n", b"e" * 20 + b"\n", b"f" * 25]),
        max_size=40,
    ),
    st.integers(min_value=11, max_value=40),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_ranges_cover_the_file_in_whole_lines(pieces: list[bytes], block: int) -> None:
    limit = 10
    data = b"".join(pieces)
    out = list(processing.ranges(data, 0, len(data), block, limit))
    position = 0
    for too_long, start, end in out:
        assert start == position and end > start
        position = end
        text = data[start:end]
        assert end == len(data) or text.endswith(b"\n")
        if too_long:
            assert text.count(b"\n") <= 1 and len(text.rstrip(b"\n")) > limit
        else:
            assert len(text) <= block + limit + 1
            first = text.split(b"\n")[0]
            assert len(first) <= limit  # a range never begins with a line over the limit
    assert position == len(data)


W3C_PIECES = [
    "#Fields: date time cs-host",
    "  #Fields: date time c-ip cs-host",
    "\x1c#Fields: date cs-host time",
    "#Fields:",
    "# Fields: nope",
    "2026-11-02 09:00:00 a.example",
    "2026-11-02 09:00:00 /#Fields: x",
    "#Software: x",
    "#Fields: " + "f " * (MAX_LINE_BYTES // 2),
    "\udcff#Fields: date time cs-host c-ip",
    "",
]


@given(st.lists(st.sampled_from(W3C_PIECES), max_size=12), st.sampled_from([[], ["date", "time", "cs-host"]]))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_w3c_state_after_equals_the_state_parsing_leaves(pieces: list[str], fields: list[str]) -> None:
    data = b"".join(p.encode("utf-8", "surrogateescape") + b"\n" for p in pieces)
    parser = W3cParser()
    parser.restore({"fields": fields})
    predicted = parser.state_after(data, 0, len(data), parser.state())
    stats = ParseStats()
    from io import BytesIO

    from trustplane.discovery.parsers import parse_stream

    for _ in parse_stream(BytesIO(data), parser, stats, columnar=True):
        pass
    assert predicted == parser.state()
    assert stats.lines_read == len(pieces)


def test_stats_of_following_lines_add_up_with_their_samples_renumbered() -> None:
    first, second = ParseStats(), ParseStats()
    for n in range(1, 4):
        first.lines_read += 1
        first.reject(n, f"a{n}", Rejection("bad"))
    for n in range(1, 5):
        second.lines_read += 1
        second.reject(n, f"b{n}", Rejection("bad" if n % 2 else "worse"))
    second.parsed, second.lines_read = 3, second.lines_read + 3
    first.add(second)
    assert (first.lines_read, first.parsed, first.rejected) == (10, 3, 7)
    assert first.reasons == {"bad": 5, "worse": 2}
    assert [s["line"] for s in first.samples["bad"]] == [1, 2, 3, 4, 6]  # five kept, renumbered
    assert [s["line"] for s in first.samples["worse"]] == [5, 7]
