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
