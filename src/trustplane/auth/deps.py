"""FastAPI dependencies that authenticate the caller and check app permissions. Every non-public route
depends on ``requires(...)``; the tenant of every request is the verified principal's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.permissions import Principal
from trustplane.auth.service import API_TOKEN_PREFIX
from trustplane.auth.tokens import verify_access_token
from trustplane.core.errors import PermissionDenied, Unauthenticated


def base_url(request: Request) -> str:
    configured: str = request.app.state.settings.public_url
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


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
    # Verifying reads (keys, API tokens) and writes nothing, so it takes a read-only session of its own,
    # opened only when used: a token and key already verified are answered from memory.
    async with request.app.state.db.read_only() as session:
        return await _authenticate(request, session)


async def _authenticate(request: Request, session: AsyncSession) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("Access token is empty.")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    scheme = scheme.lower()
    if scheme not in ("bearer", "token") or not credential:
        raise Unauthenticated("The Authorization header must be 'Bearer <token>' or 'Token <api token>'.")
    state = request.app.state
    if credential.startswith(API_TOKEN_PREFIX + "_"):
        principal = await state.api_tokens.verify(session, credential)
    elif scheme == "token":
        raise Unauthenticated("The 'Token' scheme takes an API token.")
    else:
        principal = await verify_access_token(
            session, state.keys, credential, issuer_base=base_url(request), audiences=state.settings.audiences
        )
    request.state.principal = principal
    return principal


def requires(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller must hold at least one of ``permissions``."""

    async def check(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.has_any(permissions):
            raise PermissionDenied(
                "Insufficient privileges to complete the operation. "
                f"This operation needs one of: {', '.join(permissions)}."
            )
        return principal

    return check
