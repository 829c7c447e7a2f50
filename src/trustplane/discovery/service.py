"""Cloud discovery rules: announcing an upload, accepting its bytes through a signed URL, queueing it into a
report, and processing it in resumable slices. No FastAPI here, and nothing commits: the request or the job
owns the transaction."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound, Unauthenticated
from trustplane.core.events import Actor, EventSpec, emit
from trustplane.core.models import Job
from trustplane.discovery.catalog import shipped_catalog
from trustplane.discovery.models import DiscoverySettings, DiscoveryStream, DiscoveryUpload
from trustplane.discovery.parsers import (
    CUSTOM_SOURCE,
    CustomFormat,
    CustomFormatError,
    ParseStats,
    is_supported,
    parser_for,
)
from trustplane.discovery.processing import process_slice
from trustplane.discovery.repository import (
    AggregateRepository,
    SettingsRepository,
    StreamRepository,
    UnmatchedRepository,
    UploadRepository,
    upload_for_signed_url,
)

log = structlog.get_logger("trustplane.discovery")

PROCESS_JOB = "discovery.process"
MAX_UPLOAD_BYTES = 5 * 1024**3  # MCAS: 5 GB per file
UPLOAD_URL_LIFETIME = timedelta(hours=24)
UPLOAD_PATH = "/api/v1/discovery/upload/"
SLICE_LINES = 500_000
SLICE_SECONDS = 5.0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AnnouncedUpload:
    upload: DiscoveryUpload
    url: str


async def announce_upload(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    *,
    filename: str,
    source: str,
    base_url: str,
    data_dir: Path,
) -> AnnouncedUpload:
    """Stage 1 (``upload_url``): a one-file upload slot and the signed URL that fills it."""
    filename = (filename or "").strip()
    if not filename or len(filename) > 512:
        raise BadRequest("filename is required (at most 512 characters).")
    if not source:
        raise BadRequest("source is required.")
    if not is_supported(source):
        raise BadRequest(f"Unknown source type {source!r}.")
    if source == CUSTOM_SOURCE and await custom_format(session, tenant_id) is None:
        raise BadRequest("Source CUSTOM_PARSER needs a custom log format; define one first.")
    token = secrets.token_urlsafe(32)
    upload = DiscoveryUpload(
        filename=filename,
        source=source,
        token_hash=_hash(token),
        path="",
        expires_at=utcnow() + UPLOAD_URL_LIFETIME,
        created_by=actor.as_dict(),
    )
    UploadRepository(session, tenant_id).add(upload)
    await session.flush()
    upload.path = str((data_dir / "discovery" / tenant_id / f"{upload.id}.log").resolve())
    return AnnouncedUpload(upload, f"{base_url}{UPLOAD_PATH}{upload.id}?sig={token}")


async def upload_for_put(session: AsyncSession, upload_id: str, token: str) -> DiscoveryUpload:
    """Stage 2's credential check: the URL's secret must match, the slot be unexpired and not yet queued."""
    upload = await upload_for_signed_url(session, upload_id)
    if upload is None or not token or not hmac.compare_digest(upload.token_hash, _hash(token)):
        raise Unauthenticated("The upload URL is not valid.")
    if upload.expires_at < utcnow():
        raise Unauthenticated("The upload URL has expired.")
    if upload.status not in ("awaiting", "uploaded"):
        raise BadRequest("This upload has already been submitted for processing.")
    return upload


def mark_uploaded(upload: DiscoveryUpload, size: int) -> None:
    upload.status = "uploaded"
    upload.size = size
    upload.uploaded_at = utcnow()


def upload_id_from_url(upload_url: str) -> str:
    parts = urlsplit(upload_url or "")
    if not parts.path.startswith(UPLOAD_PATH):
        raise BadRequest("uploadUrl is not an upload URL returned by upload_url.")
    return parts.path[len(UPLOAD_PATH) :].strip("/")


async def submit_upload(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    *,
    upload_url: str,
    stream_name: str,
    as_snapshot: bool,
) -> DiscoveryUpload:
    """Stage 3 (``done_upload``): queue the stored file into the named report (created on first use)."""
    stream_name = (stream_name or "").strip()
    if not stream_name or len(stream_name) > 256:
        raise BadRequest("inputStreamName is required (at most 256 characters).")
    uploads = UploadRepository(session, tenant_id)
    upload = await uploads.get(upload_id_from_url(upload_url))
    if upload is None:
        raise BadRequest("uploadUrl does not name an upload of this tenant.")
    if upload.status == "awaiting":
        raise BadRequest("The file has not been uploaded to uploadUrl yet.")
    if upload.status != "uploaded":
        raise BadRequest("This upload has already been submitted for processing.")
    streams = StreamRepository(session, tenant_id)
    stream = await streams.by_name(stream_name, is_snapshot=as_snapshot)
    if stream is None:
        stream = streams.add(DiscoveryStream(name=stream_name, is_snapshot=as_snapshot))
        await session.flush()
    upload.stream_id = stream.id
    upload.status = "processing"
    session.add(Job(tenant_id=tenant_id, kind=PROCESS_JOB, payload={"upload_id": upload.id}))
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec(
            "discovery.upload.submitted",
            "discoveryUpload",
            upload.id,
            {
                "filename": upload.filename,
                "source": upload.source,
                "stream": stream.name,
                "snapshot": as_snapshot,
            },
        ),
    )
    return upload


async def get_upload(session: AsyncSession, tenant_id: str, upload_id: str) -> DiscoveryUpload:
    upload = await UploadRepository(session, tenant_id).get(upload_id)
    if upload is None:
        raise NotFound(f"No upload {upload_id!r}.")
    return upload


async def custom_format(session: AsyncSession, tenant_id: str) -> CustomFormat | None:
    current = await SettingsRepository(session, tenant_id).current()
    if current is None or not current.custom_parser:
        return None
    return CustomFormat.from_dict(current.custom_parser)


async def set_custom_format(
    session: AsyncSession, tenant_id: str, actor: Actor, definition: dict[str, Any]
) -> CustomFormat:
    try:
        fmt = CustomFormat.from_dict(definition)
    except CustomFormatError as exc:
        raise BadRequest(str(exc)) from exc
    repo = SettingsRepository(session, tenant_id)
    current = await repo.current()
    if current is None:
        current = repo.add(DiscoverySettings())
    current.custom_parser = dict(definition)
    current.modified_at = utcnow()
    await emit(
        session, tenant_id, actor, EventSpec("discovery.customParser.set", "discoverySettings", tenant_id, {})
    )
    return fmt


async def process_next_slice(
    session: AsyncSession,
    tenant_id: str,
    upload_id: str,
    *,
    max_lines: int = SLICE_LINES,
    max_seconds: float = SLICE_SECONDS,
) -> bool:
    """Process one slice of an upload and commit it with the checkpoint (the caller's transaction). Returns
    True when the upload is finished. A slice whose starting offset moved meanwhile (another worker got
    there first) raises, so its sums roll back and nothing is counted twice."""
    uploads = UploadRepository(session, tenant_id)
    upload = await uploads.get(upload_id)
    if upload is None or upload.status != "processing" or upload.stream_id is None:
        return True
    start = upload.offset
    custom = await custom_format(session, tenant_id) if upload.source == CUSTOM_SOURCE else None
    parser = parser_for(upload.source, custom)
    parser.restore(dict(upload.parser_state or {}))
    stats = ParseStats.from_dict(dict(upload.stats or {}))
    path = Path(upload.path)
    if not await asyncio.to_thread(path.exists):
        upload.status = "failed"
        upload.error = "The uploaded file is missing."
        upload.finished_at = utcnow()
        return True
    result = await asyncio.to_thread(
        process_slice,
        path,
        parser,
        stats,
        shipped_catalog(),
        start_offset=start,
        max_lines=max_lines,
        max_seconds=max_seconds,
        batch_lines=min(16384, max_lines),
    )
    await AggregateRepository(session, tenant_id).add_sums(upload.stream_id, result.apps)
    await UnmatchedRepository(session, tenant_id).add_sums(upload.stream_id, result.unmatched)
    now = utcnow()
    values: dict[str, Any] = {
        "offset": result.end_offset,
        "parser_state": result.parser_state,
        "stats": stats.to_dict(),
    }
    if result.finished:
        values.update(status="done", finished_at=now)
    if not await uploads.advance_checkpoint(upload.id, start, values):
        raise RuntimeError(f"upload {upload.id}: checkpoint moved during the slice; not counting it twice")
    if result.finished:
        stream = await StreamRepository(session, tenant_id).get(upload.stream_id)
        if stream is not None:
            stream.last_data_received = now
    log.info(
        "discovery_slice",
        upload_id=upload.id,
        lines=result.lines,
        offset=result.end_offset,
        done=result.finished,
    )
    return result.finished
