"""Runtime settings, read from ``TRUSTPLANE_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRUSTPLANE_", extra="ignore")

    data_dir: Path = Path(".trustplane")
    # Empty means the embedded SQLite database inside data_dir.
    database_url: str = ""
    # The externally visible base URL; issuer, JWKS and @odata.nextLink are built from it.
    # Empty means "derive from the request" (fine for a single host on loopback).
    public_url: str = ""
    # Audiences an access token may carry; the first is the default resource for `/.default` scopes.
    audiences: list[str] = Field(default_factory=lambda: ["https://graph.microsoft.com", "api://trustplane"])
    access_token_lifetime_seconds: int = 3600
    # Largest request body accepted by any face (Graph answers 413 beyond it).
    max_body_bytes: int = 1_048_576
    default_page_size: int = 100
    max_page_size: int = 999
    log_level: str = "info"
    log_json: bool = True
    access_log: bool = False
    # Run the job worker inside `serve`. On PostgreSQL, separate `trustplane worker`s may share the queue too.
    run_worker_in_process: bool = True
    job_lease_seconds: int = 30
    job_poll_seconds: float = 0.5
    # Pooled PostgreSQL connections per process (as many again may open beyond it under a burst, and are
    # closed again after). With 10, the first seconds at 32 requests in flight cost a GET by id ~960 us of
    # server CPU against ~530 us with 20, opening connections; after that both measured the same.
    db_pool_size: int = 20
    # Users kept per process for read-only requests (core.cache; PostgreSQL only, 0 turns it off).
    row_cache_size: int = 50_000
    # Serve the hot Graph reads (user by id, the userPrincipalName eq lookup, group by id) outside FastAPI's
    # routing (graph.fast_reads): the same answers, less CPU each. false: every request is routed (read per
    # request, so a test can compare both paths on one server).
    graph_fast_reads: bool = True
    # Authenticator models (AAGUIDs) every tenant allows to register as passkeys besides its own list, e.g.
    # a test browser's virtual authenticator (never needed in production).
    webauthn_extra_aaguids: list[str] = Field(default_factory=list)

    # Requests per API token or app on the rate-limited faces (the MCAS API: discovery, alerts, activities),
    # in the `limits` notation ("600/minute"); a token's own `rate_limit` setting overrides it.
    api_rate_limit: str = "600/minute"
    # Where the rate-limit windows are kept: "memory://" (per process) or "redis://host:6379" (shared).
    rate_limit_storage_url: str = "memory://"

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'trustplane.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def get_settings() -> Settings:
    return Settings()
