"""Rate limits per caller (API token or app), with the ``limits`` library: a moving window per principal,
kept in memory by default or in Redis (``TRUSTPLANE_RATE_LIMIT_STORAGE_URL=redis://…``) so every server
process shares it. The limit is the token's own (its ``rate_limit`` setting, ``tokens create
--rate-limit``) or ``TRUSTPLANE_API_RATE_LIMIT``. Over the limit a request is answered 429 with
``Retry-After`` in the face's own error dialect. Faces opt in per router (the MCAS face: discovery, alerts,
activities)."""

from __future__ import annotations

import math
import time

import structlog
from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from trustplane.auth.deps import authenticate
from trustplane.core.errors import DomainError

log = structlog.get_logger("trustplane.ratelimit")
TOKEN_SETTING = "rate_limit"  # noqa: S105  (a settings key, no secret)


class TooManyRequests(DomainError):
    status = 429
    code = "tooManyRequests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


def parse_limit(spec: str) -> RateLimitItem:
    """``"30/minute"``, ``"1000 per hour"``, … (the ``limits`` notation); ValueError when malformed."""
    return parse(spec)


class RateLimiter:
    def __init__(self, default: str, storage_url: str = "memory://") -> None:
        url = storage_url if storage_url.startswith("async+") else f"async+{storage_url}"
        self.strategy = MovingWindowRateLimiter(storage_from_string(url))
        self.default = parse_limit(default)
        self._items: dict[str, RateLimitItem | None] = {}

    def _item(self, spec: object) -> RateLimitItem:
        if not isinstance(spec, str) or not spec:
            return self.default
        if spec not in self._items:
            try:
                self._items[spec] = parse_limit(spec)
            except ValueError:
                log.warning("rate_limit_setting_malformed", setting=spec)
                self._items[spec] = None
        return self._items[spec] or self.default

    async def hit(self, key: str, spec: object = None) -> None:
        item = self._item(spec)
        if await self.strategy.hit(item, key):
            return
        stats = await self.strategy.get_window_stats(item, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"Rate limit of {item.amount} requests per {item.multiples} {item.GRANULARITY.name} exceeded; "
            f"retry in {retry_after} s.",
            retry_after,
        )


async def check_rate_limit(request: Request) -> None:
    """A router dependency: authenticates (401 first for a bad credential), then counts the request."""
    principal = await authenticate(request)
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.hit(
        f"{principal.tenant_id}:{principal.kind}:{principal.id}", principal.settings.get(TOKEN_SETTING)
    )


RateLimited = Depends(check_rate_limit)
