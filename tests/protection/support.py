"""Helpers for identity protection tests: directory users and service calls in their own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.server import TestServer
from trustplane.core.events import SYSTEM
from trustplane.directory import service as directory
from trustplane.protection import service
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
