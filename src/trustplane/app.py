"""``create_app(settings)``: the ASGI app with every face mounted, its error dialects, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

import trustplane.directory.audit  # noqa: F401  (registers the audit job handler)
from trustplane import __version__
from trustplane.alerts import tasks as _alerts_tasks  # noqa: F401  (registers ingest and webhook jobs)
from trustplane.alerts.api import router as alerts_router
from trustplane.auth.api import router as oauth_router
from trustplane.auth.deps import requires
from trustplane.auth.keys import KeyStore
from trustplane.auth.permissions import METRICS_READ
from trustplane.auth.ratelimit import RateLimiter
from trustplane.auth.service import ApiTokenVerifier
from trustplane.core.db import Database
from trustplane.core.error_dialects import ErrorDialects
from trustplane.core.errors import BadRequest, DomainError
from trustplane.core.jobs import run_worker
from trustplane.core.observability import REGISTRY, ObservabilityMiddleware, configure_logging
from trustplane.discovery import tasks as _discovery_tasks  # noqa: F401  (registers the processing job)
from trustplane.discovery.api import router as discovery_router
from trustplane.discovery.errors import McasErrorDialect
from trustplane.discovery.graph_api import router as discovery_graph_router
from trustplane.graph.api import router as graph_router
from trustplane.graph.audit import router as audit_router
from trustplane.graph.conditional_access import router as conditional_access_router
from trustplane.graph.directory_objects import router as directory_objects_router
from trustplane.graph.errors import GraphErrorDialect
from trustplane.graph.fast_reads import GraphFastReads
from trustplane.graph.identity_protection import router as identity_protection_router
from trustplane.idp.oauth.api import AUTHORIZATION_SERVER_ROUTES
from trustplane.idp.oauth.api import router as authorization_server_router
from trustplane.idp.signin.api import ROUTES as SIGNIN_ROUTES
from trustplane.idp.signin.api import router as signin_router
from trustplane.protection import ipintel
from trustplane.protection import tasks as _protection_tasks  # noqa: F401  (offline detections, upkeep)
from trustplane.protection.api import router as protection_router
from trustplane.scim.api import router as scim_router
from trustplane.scim.errors import ScimErrorDialect
from trustplane.settings import Settings

log = structlog.get_logger("trustplane.app")

# Routes that answer without a token: how a caller obtains one, and the liveness probe.
PUBLIC_ROUTES = frozenset(
    {
        "/healthz",
        "/{tenant}/oauth2/v2.0/token",
        "/{tenant}/discovery/v2.0/keys",
        "/{tenant}/v2.0/.well-known/openid-configuration",
        # MCAS's pre-signed upload URL: no token, its own secret is the credential (discovery.service).
        "/api/v1/discovery/upload/{upload_id}",
    }
    # The sign-in pages: how a user authenticates (each form CSRF-protected; security info checks the
    # browser session itself).
    | SIGNIN_ROUTES
    # The authorization server: authorize, token, revoke, introspect, logout, userinfo, discovery.
    | AUTHORIZATION_SERVER_ROUTES
)


async def refuse_nul_in_url(request: Request) -> None:
    """PostgreSQL can neither store nor compare U+0000, so a URL carrying one is bad input (on every backend
    alike) rather than a database error. Async on purpose: FastAPI runs a plain ``def`` dependency in a
    thread, which cost every request about 160 us of CPU (docs/benchmarks.md)."""
    if "\x00" in request.scope["path"] or b"%00" in request.scope["query_string"]:
        raise BadRequest("The request URL contains a NUL character (%00), which is not allowed.")


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        if owns_db:
            app.state.db.start()  # the row cache's change listener (PostgreSQL)
        if settings.run_worker_in_process:
            worker = asyncio.create_task(
                run_worker(
                    app.state.db,
                    lease_seconds=settings.job_lease_seconds,
                    poll_seconds=settings.job_poll_seconds,
                    stop=stop,
                )
            )
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            if owns_db:
                await app.state.db.dispose()

    owns_db = db is None
    app = FastAPI(
        title="TrustPlane",
        version=__version__,
        summary="Zero Trust control plane: directory and Microsoft-Graph-compatible API.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_in_url)],
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    ipintel.configure(settings.data_dir / ipintel.DATA_SUBDIR)  # packaged data + the admin's newer files
    app.state.db = db or Database(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        row_cache_size=settings.row_cache_size,
    )
    app.state.keys = KeyStore(settings.access_token_lifetime_seconds)
    app.state.api_tokens = ApiTokenVerifier()
    app.state.rate_limiter = RateLimiter(settings.api_rate_limit, settings.rate_limit_storage_url)
    app.add_middleware(GraphFastReads)  # inside ObservabilityMiddleware: request ids and metrics as usual
    app.add_middleware(ObservabilityMiddleware, access_log=settings.access_log)
    # Each face answers failures in its own dialect, chosen by path prefix; Graph's is the default.
    dialects = ErrorDialects(GraphErrorDialect())
    dialects.register("/scim", ScimErrorDialect())
    dialects.register("/api", McasErrorDialect())
    app.state.error_dialects = dialects

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        response = dialects.for_request(request).domain_error(request, exc)
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. Retry-After on a 429
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return dialects.for_request(request).validation_error(request, f"{where}: {first.get('msg', '')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return dialects.for_request(request).http_error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception(
            "unhandled_error", path=request.url.path, request_id=getattr(request.state, "request_id", "")
        )
        return dialects.for_request(request).unexpected_error(request)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database reachability")
    async def healthz(request: Request) -> Response:
        from sqlalchemy import text

        async with request.app.state.db.read_session() as session:
            await session.execute(text("SELECT 1"))
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (needs Metrics.Read)")
    async def metrics(_: object = Depends(requires(METRICS_READ))) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.include_router(oauth_router)
    app.include_router(authorization_server_router)
    app.include_router(graph_router)
    app.include_router(directory_objects_router)
    app.include_router(audit_router)
    app.include_router(conditional_access_router)
    app.include_router(identity_protection_router)
    app.include_router(protection_router)
    app.include_router(scim_router)
    app.include_router(discovery_router)
    app.include_router(alerts_router)
    app.include_router(discovery_graph_router)
    app.include_router(signin_router)
    return app
