"""Alembic migrations, run programmatically on the async engine (``trustplane migrate``, and on start)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(sync_conn: Any, revision: str) -> None:
    with warnings.catch_warnings():
        # Batch mode reflects SQLite tables and cannot read expression indexes; 0010 restores them.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        command.upgrade(alembic_config(sync_conn), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
