"""Anonymisation rules: the tenant's defaults, each report's setting (fixed when the report is created), the
tenant key, and audited resolution. No FastAPI, never commits.

Storage: until discovery has its own migration slot, these settings live in the tenant's discovery settings
row beside the score metrics (``DiscoverySettings.score_settings["anonymization"]``); every writer of that
row locks it first (``SettingsRepository.current(for_update=True)``), so the key, once made, never changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest
from trustplane.core.events import Actor, EventSpec, emit
from trustplane.discovery.anonymizer import IP_ADDRESS, KINDS, USER, Anonymizer, NotAToken, new_key
from trustplane.discovery.models import DiscoverySettings, DiscoveryStream
from trustplane.discovery.repository import SettingsRepository

SECTION = "anonymization"
DIRECTIONS = ("fromAnonymized", "toAnonymized")
MAX_RESOLVE = 100


@dataclass(frozen=True)
class Privacy:
    """Whether a report (or, as defaults, a new report) anonymises user names and source IP addresses."""

    users: bool = False
    ip_addresses: bool = False

    @property
    def any(self) -> bool:
        return self.users or self.ip_addresses

    def as_dict(self) -> dict[str, bool]:
        return {"anonymizeUsers": self.users, "anonymizeIpAddresses": self.ip_addresses}


def _section(row: DiscoverySettings | None) -> dict[str, Any]:
    data = (row.score_settings if row is not None else None) or {}
    section = data.get(SECTION)
    return dict(section) if isinstance(section, dict) else {}


async def _locked_row(session: AsyncSession, tenant_id: str) -> DiscoverySettings:
    repo = SettingsRepository(session, tenant_id)
    row = await repo.current(for_update=True)
    if row is None:
        row = repo.add(DiscoverySettings(score_settings={}))
        await session.flush()
    return row


def _store(row: DiscoverySettings, section: dict[str, Any]) -> None:
    row.score_settings = {**(row.score_settings or {}), SECTION: section}
    row.modified_at = utcnow()


async def defaults(session: AsyncSession, tenant_id: str) -> Privacy:
    section = _section(await SettingsRepository(session, tenant_id).current())
    return Privacy(bool(section.get("usersByDefault")), bool(section.get("ipAddressesByDefault")))


async def set_defaults(session: AsyncSession, tenant_id: str, actor: Actor, data: dict[str, Any]) -> Privacy:
    """MCAS's "Anonymize private information by default in new reports and data sources". Audited."""
    unknown = sorted(set(data) - {"anonymizeUsers", "anonymizeIpAddresses"})
    if unknown:
        raise BadRequest(f"Unknown properties {unknown}; allowed: anonymizeUsers, anonymizeIpAddresses.")
    if not all(isinstance(v, bool) for v in data.values()):
        raise BadRequest("anonymizeUsers and anonymizeIpAddresses are booleans.")
    row = await _locked_row(session, tenant_id)
    section = _section(row)
    section["usersByDefault"] = bool(data.get("anonymizeUsers", section.get("usersByDefault", False)))
    section["ipAddressesByDefault"] = bool(
        data.get("anonymizeIpAddresses", section.get("ipAddressesByDefault", False))
    )
    _store(row, section)
    privacy = Privacy(section["usersByDefault"], section["ipAddressesByDefault"])
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("discovery.anonymization.set", "discoverySettings", tenant_id, privacy.as_dict()),
    )
    return privacy


async def of_stream(session: AsyncSession, tenant_id: str, stream_id: str) -> Privacy:
    streams = _section(await SettingsRepository(session, tenant_id).current()).get("streams") or {}
    flags = streams.get(stream_id) or {}
    return Privacy(bool(flags.get("users")), bool(flags.get("ipAddresses")))


async def of_streams(session: AsyncSession, tenant_id: str) -> dict[str, Privacy]:
    streams = _section(await SettingsRepository(session, tenant_id).current()).get("streams") or {}
    return {
        sid: Privacy(bool(f.get("users")), bool(f.get("ipAddresses")))
        for sid, f in streams.items()
        if isinstance(f, dict)
    }


async def settle_stream(
    session: AsyncSession,
    tenant_id: str,
    stream: DiscoveryStream,
    *,
    created: bool,
    users: bool | None,
    ip_addresses: bool | None,
) -> Privacy:
    """A new report takes the requested setting, else the tenant's defaults, and keeps it: an upload into
    an existing report that asks for a different setting is refused (its data would be half anonymised)."""
    if not created:
        current = await of_stream(session, tenant_id, stream.id)
        if (users is not None and users != current.users) or (
            ip_addresses is not None and ip_addresses != current.ip_addresses
        ):
            raise BadRequest(
                f"Report {stream.name!r} is {'' if current.any else 'not '}anonymised "
                f"({current.as_dict()}); a report's anonymisation is fixed when it is created."
            )
        return current
    default = await defaults(session, tenant_id)
    privacy = Privacy(
        default.users if users is None else users,
        default.ip_addresses if ip_addresses is None else ip_addresses,
    )
    if privacy.any:
        row = await _locked_row(session, tenant_id)
        section = _section(row)
        section.setdefault("key", new_key())
        streams = dict(section.get("streams") or {})
        streams[stream.id] = {"users": privacy.users, "ipAddresses": privacy.ip_addresses}
        section["streams"] = streams
        _store(row, section)
    return privacy


async def anonymizer(session: AsyncSession, tenant_id: str, *, create: bool = False) -> Anonymizer | None:
    """The tenant's anonymizer; None when it has never anonymised anything (unless ``create``)."""
    key = _section(await SettingsRepository(session, tenant_id).current()).get("key")
    if not key and create:
        row = await _locked_row(session, tenant_id)
        section = _section(row)
        key = section.setdefault("key", new_key())
        _store(row, section)
    return Anonymizer.from_key(str(key)) if key else None


async def resolve(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    *,
    kind: str,
    direction: str,
    values: Any,
    justification: Any,
) -> list[dict[str, str | None]]:
    """Resolve anonymised values to clear text (``fromAnonymized``) or look up the token of a known name
    (``toAnonymized``), with a business justification; audited (who, why, which tokens; never the names)."""
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {list(KINDS)}.")
    if direction not in DIRECTIONS:
        raise BadRequest(f"direction must be one of {list(DIRECTIONS)}.")
    if not isinstance(justification, str) or not 10 <= len(justification.strip()) <= 1000:
        raise BadRequest("A justification of 10 to 1000 characters is required.")
    if (
        not isinstance(values, list)
        or not 1 <= len(values) <= MAX_RESOLVE
        or not all(isinstance(v, str) and 0 < len(v) <= 512 for v in values)
    ):
        raise BadRequest(f"values must be a list of 1 to {MAX_RESOLVE} non-empty strings.")
    engine = await anonymizer(session, tenant_id, create=direction == "toAnonymized")
    results: list[dict[str, str | None]] = []
    for value in values:
        if direction == "toAnonymized":
            assert engine is not None
            results.append({"input": value, "output": engine.anonymize(kind, value), "error": None})
            continue
        try:
            if engine is None:
                raise NotAToken("This tenant has no anonymised data.")
            results.append({"input": value, "output": engine.resolve(kind, value), "error": None})
        except NotAToken as exc:
            results.append({"input": value, "output": None, "error": str(exc)})
    tokens = [r["input"] if direction == "fromAnonymized" else r["output"] for r in results]
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec(
            "discovery.anonymization.resolved",
            "discoverySettings",
            tenant_id,
            {
                "kind": kind,
                "direction": direction,
                "justification": justification.strip(),
                "tokens": tokens,
                "resolved": sum(1 for r in results if r["error"] is None),
            },
        ),
    )
    return results


__all__ = ["IP_ADDRESS", "USER", "Privacy"]
