"""Helpers for identity protection tests: directory users and service calls in their own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.server import TestServer
from trustplane.core.events import SYSTEM
from trustplane.directory import service as directory
from trustplane.protection import service
from trustplane.protection.models import RiskDetection
from trustplane.protection.repository import SignInRepository
from trustplane.protection.service import Assessment, SignInAttempt

T = TypeVar("T")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def write(server: TestServer, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        async with server.db.session() as session:
            return await action(session)

    return server.run(run())  # type: ignore[no-any-return]


def make_user(server: TestServer, tenant_id: str, name: str = "alex") -> Any:
    nick = f"{name}{uuid.uuid4().hex[:6]}"
    return write(
        server,
        lambda s: directory.create_user(
            s,
            tenant_id,
            SYSTEM,
            {
                "user_principal_name": f"{nick}@example.com",
                "display_name": name.title(),
                "mail_nickname": nick,
            },
            password=None,
        ),
    )


def assess(server: TestServer, tenant_id: str, user: Any, **values: Any) -> Assessment:
    values.setdefault("at", T0)
    values.setdefault("ip_address", "81.2.69.160")
    values.setdefault("user_agent", CHROME)
    attempt = SignInAttempt(user_principal_name=user.user_principal_name, user_id=user.id, **values)
    return write(server, lambda s: service.assess(s, tenant_id, attempt))


def settled(server: TestServer, tenant_id: str, result: Assessment) -> Assessment:
    """The assessment as it stands once the sign-in's offline-detection job has run (the server's worker
    runs it): the stored sign-in and every detection linked to it."""
    server.wait_for_jobs()

    async def load(session: AsyncSession) -> Assessment:
        sign_in = await SignInRepository(session, tenant_id).get(result.sign_in.id)
        assert sign_in is not None
        rows = await session.execute(
            select(RiskDetection).where(
                RiskDetection.tenant_id == tenant_id,
                RiskDetection.correlation_id == sign_in.correlation_id,
            )
        )
        detections = list(rows.scalars())
        user_risk = await service.current_user_risk(session, tenant_id, sign_in.user_id or "")
        return Assessment(
            sign_in,
            sign_in.risk_level_during_sign_in,
            sign_in.risk_level_aggregated,
            sign_in.risk_score,
            detections,
            user_risk,
        )

    return write(server, load)


def tenant_detections(server: TestServer, tenant_id: str, kind: str) -> int:
    server.wait_for_jobs()
    return int(
        server.scalar(
            "SELECT count(*) FROM risk_detections WHERE tenant_id = :t AND risk_event_type = :k",
            t=tenant_id,
            k=kind,
        )
    )
