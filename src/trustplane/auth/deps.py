"""FastAPI dependencies that authenticate the caller and check app permissions. Every non-public route
depends on ``requires(...)``; the tenant of every request is the verified principal's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.permissions import Principal
from trustplane.auth.service import API_TOKEN_PREFIX
from trustplane.auth.tokens import verified_from_memory, verify_access_token
from trustplane.core.errors import PermissionDenied, Unauthenticated

# Request base URLs by what Starlette derives them from (scheme, Host header, server, root path): building
# ``request.base_url`` cost ~10 us per call, made twice per request (token issuer, @odata.context).
_BASE_URLS: dict[tuple[Any, ...], str] = {}


def base_url(request: Request) -> str:
    configured: str = request.app.state.settings.public_url
    if configured:
        return configured.rstrip("/")
    scope = request.scope
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    key = (scope.get("scheme"), host, scope.get("server"), scope.get("root_path"), scope.get("app_root_path"))
    found = _BASE_URLS.get(key)
    if found is None:
        if len(_BASE_URLS) >= 1024:  # the Host header is the client's: keep the memo bounded
            _BASE_URLS.clear()
        found = _BASE_URLS[key] = str(request.base_url).rstrip("/")
    return found


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the handler returns, rolled back if it raises."""
    async with request.app.state.db.session() as session:
        yield session


async def read_only_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The session of a request that writes nothing (``Database.read_only``: autocommit reads, may be
    answered from the row cache)."""
    async with request.app.state.db.read_only() as session:
        yield session


# The request's session ends before the response is sent, so a client never sees a 2xx for a change that
# has not committed (and a failed commit becomes an error response).
DbSession = Depends(db_session, scope="function")
# The explicit read-only marker: only routes that write nothing take it (their statements autocommit).
ReadSession = Depends(read_only_session, scope="function")


async def authenticate(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("Access token is empty.")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    scheme = scheme.lower()
    if scheme not in ("bearer", "token") or not credential:
        raise Unauthenticated("The Authorization header must be 'Bearer <token>' or 'Token <api token>'.")
    state = request.app.state
    is_api_token = credential.startswith(API_TOKEN_PREFIX + "_")
    if not is_api_token and scheme == "token":
        raise Unauthenticated("The 'Token' scheme takes an API token.")
    issuer_base = base_url(request)
    audiences = state.settings.audiences
    # A token verified before, with its key checked recently, is answered from memory; everything else
    # reads (keys, API tokens) in a read-only session of its own, opened only then.
    principal = (
        None
        if is_api_token
        else verified_from_memory(state.keys, credential, issuer_base=issuer_base, audiences=audiences)
    )
    if principal is None:
        async with state.db.read_only() as session:
            if is_api_token:
                principal = await state.api_tokens.verify(session, credential)
            else:
                principal = await verify_access_token(
                    session, state.keys, credential, issuer_base=issuer_base, audiences=audiences
                )
    request.state.principal = principal
    return principal


def requires(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller must hold at least one of ``permissions``."""

    # One dependency, not two (``check`` on ``authenticate``): each level of FastAPI's dependency
    # resolution cost ~15 us per request.
    async def check(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.has_any(permissions):
            raise PermissionDenied(
                "Insufficient privileges to complete the operation. "
                f"This operation needs one of: {', '.join(permissions)}."
            )
        return principal

    return check
