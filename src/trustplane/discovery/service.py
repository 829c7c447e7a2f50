"""Cloud discovery rules: announcing an upload, accepting its bytes through a signed URL, queueing it into a
report, and processing it in resumable slices. No FastAPI here, and nothing commits: the request or the job
owns the transaction."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound, Unauthenticated
from trustplane.core.events import SYSTEM, Actor, EventSpec, emit
from trustplane.core.models import Job
from trustplane.discovery import anonymization
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
PURGE_JOB = "discovery.purge_log"
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
    anonymize_users: bool | None = None,
    anonymize_ip_addresses: bool | None = None,
) -> DiscoveryUpload:
    """Stage 3 (``done_upload``): queue the stored file into the named report (created on first use, with
    the requested anonymisation or the tenant's default; an existing report keeps its own)."""
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
    created = stream is None
    if stream is None:
        stream = streams.add(DiscoveryStream(name=stream_name, is_snapshot=as_snapshot))
        await session.flush()
    privacy = await anonymization.settle_stream(
        session,
        tenant_id,
        stream,
        created=created,
        users=anonymize_users,
        ip_addresses=anonymize_ip_addresses,
    )
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
                **privacy.as_dict(),
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
    current = await repo.current(for_update=True)
    if current is None:
        current = repo.add(DiscoverySettings())
    current.custom_parser = dict(definition)
    current.modified_at = utcnow()
    await emit(
        session, tenant_id, actor, EventSpec("discovery.customParser.set", "discoverySettings", tenant_id, {})
    )
    return fmt


def _apps_seen(upload: DiscoveryUpload, apps: pl.DataFrame) -> EventSpec:
    """The event of a processed slice: per app and user, transactions, bytes and the day last seen (the
    activity log and the alert policies read it)."""
    catalog = shipped_catalog()
    usage = (
        apps.group_by("app_id", "user_name")
        .agg(
            pl.sum("transactions", "bytes_up", "bytes_down"),
            pl.first("ip_address"),
            pl.max("day").alias("last_day"),
        )
        .sort("app_id", "user_name")
    )
    rows = [
        {
            "appId": r["app_id"],
            "appName": catalog.apps[r["app_id"]].name if r["app_id"] in catalog.apps else r["app_id"],
            "user": r["user_name"] or None,
            "ipAddress": r["ip_address"] or None,
            "transactions": r["transactions"],
            "bytesUp": r["bytes_up"],
            "bytesDown": r["bytes_down"],
            "lastSeen": int(datetime.combine(r["last_day"], time.min, tzinfo=UTC).timestamp() * 1000),
        }
        for r in usage.iter_rows(named=True)
    ]
    return EventSpec(
        "discovery.apps.seen", "discoveryUpload", upload.id, {"streamId": upload.stream_id, "usage": rows}
    )


async def _anonymized(
    session: AsyncSession, tenant_id: str, apps: pl.DataFrame, privacy: anonymization.Privacy
) -> pl.DataFrame:
    engine = await anonymization.anonymizer(session, tenant_id)
    if engine is None:  # settle_stream makes the key with the report's setting; never without it
        raise RuntimeError("an anonymised report without a tenant key")
    return engine.frame(apps, users=privacy.users, ip_addresses=privacy.ip_addresses)


def _withheld(samples: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Reject samples of an anonymised report keep line number and reason, not the line's text."""
    return {
        reason: [{**s, "text": "(withheld: anonymised report)"} for s in bucket]
        for reason, bucket in samples.items()
    }


async def _new_apps(aggregates: AggregateRepository, apps: pl.DataFrame) -> list[str]:
    in_slice = sorted(apps.get_column("app_id").unique().to_list()) if apps.height else []
    seen = await aggregates.seen_apps(in_slice)
    return [a for a in in_slice if a not in seen]


async def _announce_new_apps(
    session: AsyncSession,
    tenant_id: str,
    upload: DiscoveryUpload,
    stream: DiscoveryStream | None,
    apps: pl.DataFrame,
    new_apps: list[str],
) -> None:
    """``discovery.app.discovered``: the first traffic of a catalogue app in this tenant (any report), once
    per tenant and app, with the app's risk score under the tenant's metrics and its governance status."""
    from trustplane.discovery.governance import governed_apps  # governance imports this module's peers

    governed = await governed_apps(session, tenant_id)
    usage = (
        apps.filter(pl.col("app_id").is_in(new_apps))
        .group_by("app_id")
        .agg(
            pl.sum("transactions"),
            pl.sum("traffic"),
            pl.col("user_name").filter(pl.col("user_name") != "").n_unique().alias("users"),
            pl.min("day").alias("first_day"),
        )
    )
    for row in usage.iter_rows(named=True):
        g = governed.get(row["app_id"])
        if g is None:
            continue
        await emit(
            session,
            tenant_id,
            SYSTEM,
            EventSpec(
                "discovery.app.discovered",
                "discoveredApp",
                g.app.id,
                {
                    "appId": g.app.id,
                    "name": g.app.name,
                    "category": g.app.category,
                    "vendor": g.app.vendor,
                    "riskScore": g.risk.total,
                    "status": g.status,
                    "streamId": upload.stream_id,
                    "stream": stream.name if stream is not None else None,
                    "uploadId": upload.id,
                    "firstSeenDate": row["first_day"].isoformat() if row["first_day"] else None,
                    "transactionCount": int(row["transactions"]),
                    "totalNetworkTrafficInBytes": int(row["traffic"]),
                    "userCount": int(row["users"]),
                },
            ),
        )


async def purge_log(session: AsyncSession, tenant_id: str, upload_id: str) -> None:
    """Delete a processed upload's raw log (anonymised reports keep none)."""
    upload = await UploadRepository(session, tenant_id).get(upload_id)
    if upload is not None and upload.status == "done":
        await asyncio.to_thread(Path(upload.path).unlink, missing_ok=True)


async def process_next_slice(
    session: AsyncSession,
    tenant_id: str,
    upload_id: str,
    *,
    max_lines: int = SLICE_LINES,
    max_seconds: float = SLICE_SECONDS,
    workers: int = 1,
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
        batch_lines=min(65536, max_lines),
        workers=workers,
    )
    privacy = await anonymization.of_stream(session, tenant_id, upload.stream_id)
    if privacy.any:
        result.apps = await _anonymized(session, tenant_id, result.apps, privacy)
        stats.samples = _withheld(stats.samples)
    aggregates = AggregateRepository(session, tenant_id)
    await aggregates.lock_app_discovery()
    new_apps = await _new_apps(aggregates, result.apps)
    await aggregates.add_sums(upload.stream_id, result.apps)
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
    stream = await StreamRepository(session, tenant_id).get(upload.stream_id)
    if new_apps:
        await _announce_new_apps(session, tenant_id, upload, stream, result.apps, new_apps)
    if result.finished:
        if privacy.any:  # the raw log names the users it was anonymised to hide: deleted once this commits
            session.add(Job(tenant_id=tenant_id, kind=PURGE_JOB, payload={"upload_id": upload.id}))
        if stream is not None:
            stream.last_data_received = now
        await emit(
            session,
            tenant_id,
            SYSTEM,
            EventSpec(
                "discovery.upload.processed",
                "discoveryUpload",
                upload.id,
                {
                    "filename": upload.filename,
                    "source": upload.source,
                    "streamId": upload.stream_id,
                    "stream": stream.name if stream is not None else None,
                    "sizeInBytes": upload.size,
                    "linesRead": stats.lines_read,
                    "parsed": stats.parsed,
                    "rejected": stats.rejected,
                },
            ),
        )
    if result.apps.height:
        await emit(session, tenant_id, SYSTEM, _apps_seen(upload, result.apps))
    log.info(
        "discovery_slice",
        upload_id=upload.id,
        lines=result.lines,
        offset=result.end_offset,
        done=result.finished,
    )
    return result.finished
