"""``trustplane discovery …``: upload a log file through the MCAS three-stage API (with a progress bar) and
govern apps, against a running server, authenticated with an API token (``trustplane tokens create``)."""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

discovery_cli = typer.Typer(help="Cloud discovery: upload traffic logs, govern apps.", no_args_is_help=True)
console = Console(stderr=True)

UrlOpt = Annotated[str, typer.Option("--url", envvar="TRUSTPLANE_URL", help="The server's base URL.")]
TokenOpt = Annotated[
    str,
    typer.Option(
        "--token", envvar="TRUSTPLANE_API_TOKEN", help="An API token with CloudApp-Discovery.ReadWrite.All."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
CHUNK = 1 << 20


def _client(url: str, token: str) -> httpx.Client:
    if not token:
        raise typer.BadParameter("an API token is required (--token or TRUSTPLANE_API_TOKEN)")
    return httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Token {token}"}, timeout=60)


def _fail(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    console.print(
        f"[red]{response.request.method} {response.request.url.path}: {response.status_code} {detail}"
    )
    raise typer.Exit(1)


def _chunks(path: Path, progress: Progress, task: Any) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            progress.update(task, advance=len(chunk))
            yield chunk


@discovery_cli.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The log file.")],
    source: Annotated[
        str, typer.Option("--source", help="MCAS source name, e.g. SQUID, GENERIC_CEF, PALO_ALTO.")
    ],
    stream: Annotated[str, typer.Option("--stream", help="The report (MCAS inputStreamName) to add it to.")],
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Upload as a snapshot report.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is processed.")] = True,
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Upload FILE: upload_url, PUT to the signed URL, done_upload; then follow the processing."""
    size = file.stat().st_size
    with _client(url, token) as client:
        initiated = client.get(
            "/api/v1/discovery/upload_url/", params={"filename": file.name, "source": source}
        )
        _fail(initiated)
        target = initiated.json()["url"]
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=console, transient=as_json) as progress:
            task = progress.add_task(f"upload {file.name}", total=size)
            put = httpx.put(
                target,
                content=_chunks(file, progress, task),
                headers={"x-ms-blob-type": "BlockBlob", "Content-Length": str(size)},
                timeout=httpx.Timeout(60.0),
            )
            _fail(put)
            done = client.post(
                "/api/v1/discovery/done_upload/",
                json={"uploadUrl": target, "inputStreamName": stream, "uploadAsSnapshot": snapshot},
            )
            _fail(done)
            upload_id = done.json()["uploadId"]
            status = {"id": upload_id, "status": "processing"}
            if wait:
                processing = progress.add_task("process", total=size)
                while status["status"] not in ("done", "failed"):
                    time.sleep(0.2)
                    answer = client.get(f"/api/v1/discovery/uploads/{upload_id}/")
                    _fail(answer)
                    status = answer.json()
                    progress.update(processing, completed=int(status.get("bytesProcessed") or 0))
    if as_json:
        typer.echo(jsonlib.dumps(status, indent=2))
        return
    result = status.get("result") or {}
    console.print(
        f"upload {upload_id}: {status['status']}"
        + (
            f", {result.get('linesRead', 0)} lines, {result.get('parsed', 0)} parsed, "
            f"{result.get('rejected', 0)} rejected {result.get('rejectReasons', {})}"
            if result
            else ""
        )
    )
    if status["status"] == "failed":
        raise typer.Exit(1)


@discovery_cli.command("tag")
def tag(
    app_id: Annotated[str, typer.Argument(help="Catalogue app id, e.g. dropbox.")],
    status: Annotated[
        str | None, typer.Option("--status", help="sanctioned, unsanctioned, monitored, or none to clear.")
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="A custom tag (repeat; replaces the set).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with the app, audited).")] = None,
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Govern an app: sanctioned / unsanctioned / monitored and custom tags (audited)."""
    body: dict[str, Any] = {}
    if status is not None:
        body["status"] = None if status.lower() == "none" else status.lower()
    if tags is not None:
        body["tags"] = tags
    if note is not None:
        body["note"] = note
    if not body:
        raise typer.BadParameter("nothing to change: give --status, --tag or --note")
    with _client(url, token) as client:
        response = client.patch(f"/api/v1/discovery/apps/{app_id}/", json=body)
        _fail(response)
    app = response.json()
    if as_json:
        typer.echo(jsonlib.dumps(app, indent=2))
    else:
        console.print(f"{app['name']}: {', '.join(app['tags']) or 'no tags'}")


def collector(
    source: Annotated[
        str, typer.Option("--source", help="MCAS source name of the data source, e.g. SQUID, GENERIC_CEF.")
    ],
    stream: Annotated[str, typer.Option("--stream", help="The continuous report the data source feeds.")],
    udp: Annotated[
        str | None, typer.Option("--udp", help="Listen for syslog on UDP HOST:PORT, e.g. 0.0.0.0:514.")
    ] = None,
    tcp: Annotated[
        str | None, typer.Option("--tcp", help="Listen for syslog on TCP HOST:PORT, e.g. 0.0.0.0:601.")
    ] = None,
    spool: Annotated[
        Path | None,
        typer.Option("--spool", help="Directory for batches not yet sent (default .trustplane/collector/…)."),
    ] = None,
    batch_lines: Annotated[int, typer.Option("--batch-lines", min=1, help="Lines per upload.")] = 100_000,
    batch_seconds: Annotated[
        float, typer.Option("--batch-seconds", min=0.1, help="Send a batch at least this often.")
    ] = 60.0,
    anonymize_users: Annotated[
        bool | None,
        typer.Option(
            "--anonymize-users/--no-anonymize-users",
            help="Anonymise user names in a new report (default: the tenant's default).",
        ),
    ] = None,
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = "",
) -> None:
    """Receive syslog (RFC 5424 / 3164, UDP and TCP) from a firewall or proxy and feed it continuously into a
    report, in batches uploaded through the MCAS upload API (discovery.collector)."""
    import asyncio
    import signal
    import sys

    from trustplane.core.observability import configure_logging
    from trustplane.discovery.collector import Collector, McasUploader, Spool, run

    if not udp and not tcp:
        raise typer.BadParameter("give --udp and / or --tcp")
    if not token:
        raise typer.BadParameter("an API token is required (--token or TRUSTPLANE_API_TOKEN)")
    configure_logging("info", True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{source}-{stream}")
    directory = spool or Path(".trustplane") / "collector" / safe

    async def main() -> None:
        uploader = McasUploader(url, token, source=source, stream=stream, anonymize_users=anonymize_users)
        engine = Collector(Spool(directory, batch_lines, batch_seconds), uploader)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(ports: dict[str, int]) -> None:
            print(" ".join(f"{k}={v}" for k, v in ports.items()), file=sys.stderr, flush=True)

        try:
            await run(engine, udp=udp, tcp=tcp, stop=stop, ready=ready)
        finally:
            await uploader.aclose()
            print(
                f"received={engine.stats.received} dropped={engine.stats.dropped} "
                f"batches_sent={engine.stats.batches_sent} failures={engine.stats.upload_failures}",
                file=sys.stderr,
                flush=True,
            )

    asyncio.run(main())


discovery_cli.command("collector")(collector)  # also ``trustplane collector`` (registered in trustplane.cli)
