"""Per-process state that keeps ``assess`` off the database's hot spots.

* The tenant's threat-intelligence ranges, parsed once and kept for ``LISTS_TTL`` seconds (dropped at once
  in the process that changes them): a range another process adds is seen within that time. Entra marks
  malicious-IP detection offline (up to 48 hours), so the delay is well inside what the detection promises.
* The tenant-wide feature counts (the subject "*" of ``protection_feature_counts``): every learned sign-in
  adds to the same few rows (``#total`` of each feature), so writing them in each sign-in's transaction
  serialises concurrent sign-ins on those rows' locks. Their increments are added up here and written with
  a later sign-in's own counts at most once every ``FLUSH_SECONDS`` per tenant; until then this process adds
  them to what it reads. What is lost when a process dies (or the flushing transaction rolls back) is at
  most that many seconds of tenant-wide counts, which only shape how common a value is in the tenant; the
  user's own counts are written in the sign-in's transaction."""

from __future__ import annotations

import ipaddress
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.protection import ipintel
from trustplane.protection.repository import ThreatIntelRepository

LISTS_TTL = 30.0
FLUSH_SECONDS = 1.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TenantLists:
    anonymizer: tuple[Network, ...]
    malicious: tuple[Network, ...]
    loaded_at: float

    @staticmethod
    def _contains(address: str | None, networks: tuple[Network, ...]) -> bool:
        if not networks:
            return False
        parsed = ipintel.parse(address)
        return parsed is not None and any(parsed.version == n.version and parsed in n for n in networks)

    def is_anonymizer(self, address: str | None) -> bool:
        return self._contains(address, self.anonymizer)

    def is_malicious(self, address: str | None) -> bool:
        return self._contains(address, self.malicious)


_lists: dict[str, TenantLists] = {}


async def tenant_lists(session: AsyncSession, tenant_id: str) -> TenantLists:
    cached = _lists.get(tenant_id)
    now = time.monotonic()
    if cached is not None and now - cached.loaded_at < LISTS_TTL:
        return cached
    ranges = await ThreatIntelRepository(session, tenant_id).cidrs()

    def parsed(kind: str) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(c, strict=False) for k, c in ranges if k == kind)

    lists = TenantLists(parsed("anonymizer"), parsed("malicious"), now)
    _lists[tenant_id] = lists
    return lists


def forget_lists(tenant_id: str) -> None:
    _lists.pop(tenant_id, None)


# (feature, value) -> count not yet written, per tenant; value as stored ("=<value>", "#total", …)
_pending: dict[str, defaultdict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
_flushed_at: dict[str, float] = {}


def pending(tenant_id: str) -> dict[tuple[str, str], int]:
    return _pending.get(tenant_id, {})


def add_tenant_counts(tenant_id: str, rows: list[tuple[str, str, int]]) -> None:
    counts = _pending[tenant_id]
    for feature, value, n in rows:
        counts[(feature, value)] += n
    _flushed_at.setdefault(tenant_id, time.monotonic())


def take_due(tenant_id: str) -> list[tuple[str, str, int]]:
    """The tenant's pending increments when they are due to be written (and forgets them), else []."""
    now = time.monotonic()
    counts = _pending.get(tenant_id)
    if not counts or now - _flushed_at.get(tenant_id, now) < FLUSH_SECONDS:
        return []
    _flushed_at[tenant_id] = now
    del _pending[tenant_id]
    return [(f, v, n) for (f, v), n in counts.items()]
