"""Resumable processing through the service: a file processed in many slices, or with a slice lost to a
crash before its commit, gives the same report as one uninterrupted pass; a stale checkpoint never commits."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import TenantHandle, TestServer
from trustplane.core.clock import utcnow
from trustplane.discovery.models import DiscoveryStream, DiscoveryUpload
from trustplane.discovery.repository import UploadRepository
from trustplane.discovery.service import process_next_slice

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Crash(Exception):
    """Stands in for a worker killed after a slice's work but before its commit."""


def make_upload(server: TestServer, tenant: TenantHandle, fixture: str, source: str, tmp: Path) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{fixture}-{tenant.tenant_id}.log"
    shutil.copy(FIXTURES / fixture, path)

    async def make() -> str:
        async with server.db.session() as session:
            stream = DiscoveryStream(
                tenant_id=tenant.tenant_id, name=f"s-{tmp.name}-{path.name}", is_snapshot=True
            )
            session.add(stream)
            await session.flush()
            upload = DiscoveryUpload(
                tenant_id=tenant.tenant_id,
                filename=fixture,
                source=source,
                token_hash="x",
                path=str(path),
                status="processing",
                stream_id=stream.id,
                expires_at=utcnow(),
            )
            session.add(upload)
            await session.flush()
            return upload.id

    return str(server.run(make()))


def run_slices(
    server: TestServer, tenant_id: str, upload_id: str, max_lines: int, crash_every: int = 0
) -> int:
    """Slices until done; with ``crash_every`` = n, every n-th slice is thrown away before its commit."""

    async def one(crash: bool) -> bool:
        async with server.db.session() as session:
            done = await process_next_slice(session, tenant_id, upload_id, max_lines=max_lines)
            if crash:
                raise Crash
            return done

    slices = 0
    while True:
        slices += 1
        crash = bool(crash_every) and slices % crash_every == 0
        try:
            if server.run(one(crash)):
                return slices
        except Crash:
            continue


def report(server: TestServer, upload_id: str) -> dict[str, Any]:
    stream_id = server.scalar("SELECT stream_id FROM discovery_uploads WHERE id = :u", u=upload_id)
    apps = server.rows(
        "SELECT app_id, user_name, ip_address, day, transactions, blocked, bytes_up, bytes_down, traffic "
        "FROM discovery_aggregates WHERE stream_id = :s ORDER BY 1, 2, 3, 4",
        s=stream_id,
    )
    unmatched = server.rows(
        "SELECT destination, day, transactions, blocked, traffic FROM discovery_unmatched "
        "WHERE stream_id = :s ORDER BY 1, 2",
        s=stream_id,
    )
    status, stats = server.rows("SELECT status, stats FROM discovery_uploads WHERE id = :u", u=upload_id)[0]
    return {"apps": [tuple(r) for r in apps], "unmatched": [tuple(r) for r in unmatched], "status": status,
            "stats": stats}  # fmt: skip


@pytest.mark.parametrize(("fixture", "source"), [("w3c.log", "BLUECOAT"), ("squid.log", "SQUID")])
def test_many_small_slices_and_lost_slices_give_the_uninterrupted_report(
    server: TestServer, tenant: TenantHandle, tmp_path: Path, fixture: str, source: str
) -> None:
    whole = make_upload(server, tenant, fixture, source, tmp_path / "a")
    assert run_slices(server, tenant.tenant_id, whole, max_lines=1_000_000) == 1
    sliced = make_upload(server, tenant, fixture, source, tmp_path / "b")
    assert run_slices(server, tenant.tenant_id, sliced, max_lines=2) >= 3
    crashed = make_upload(server, tenant, fixture, source, tmp_path / "c")
    run_slices(server, tenant.tenant_id, crashed, max_lines=2, crash_every=2)
    expected = report(server, whole)
    assert expected["status"] == "done" and expected["apps"]
    assert report(server, sliced) == expected
    assert report(server, crashed) == expected


def test_a_stale_checkpoint_does_not_commit(server: TestServer, tenant: TenantHandle, tmp_path: Path) -> None:
    upload_id = make_upload(server, tenant, "squid.log", "SQUID", tmp_path)

    async def slice_then_stale() -> bool:
        async with server.db.session() as session:
            await process_next_slice(session, tenant.tenant_id, upload_id, max_lines=2)
        async with server.db.session() as session:
            # a second worker that read offset 0 before the first committed
            return await UploadRepository(session, tenant.tenant_id).advance_checkpoint(
                upload_id, 0, {"offset": 1}
            )

    assert server.run(slice_then_stale()) is False
    assert server.scalar('SELECT "offset" FROM discovery_uploads WHERE id = :u', u=upload_id) > 1
