"""The alert policy interface: one class per policy, each told every event it subscribes to (by type
prefix) and returning what it found. A policy reads what it needs through the context (its thresholds,
baselines, recent activities) and never writes alerts itself: the engine (alerts.service) raises or updates
them, one open alert per policy and subject."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.alerts.activities import ActivityDraft
from trustplane.core.errors import BadRequest

# MCAS enumerations (api-alerts.md).
LOW, MEDIUM, HIGH = 0, 1, 2
THREAT_DETECTION, PRIVILEGED_ACCOUNT_MONITORING, COMPLIANCE, DISCOVERY = 0, 1, 2, 4
INITIAL_ACCESS, PERSISTENCE, CREDENTIAL_ACCESS, EXFILTRATION, IMPACT = 2, 3, 6, 11, 13
RISK_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}
SEVERITY_OF_RISK = {"low": LOW, "medium": MEDIUM, "high": HIGH}


@dataclass(frozen=True)
class EventView:
    """The event a policy evaluates, as plain values."""

    id: str
    type: str
    subject_type: str
    subject_id: str
    actor: dict[str, Any]
    data: dict[str, Any]
    created_ms: int


@dataclass
class Finding:
    """What a policy found about one subject: the alert it raises (or updates, if one is open)."""

    subject: str
    title: str
    description: str
    severity: int
    stories: list[int]
    intent: list[int] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    entity_user: str | None = None
    entity_ip: str | None = None
    entity_app: str | None = None
    threat_score: int = 0


class PolicyContext(ABC):
    """What a policy may read and remember, scoped to one tenant."""

    session: AsyncSession
    tenant_id: str
    now_ms: int

    @abstractmethod
    async def observe(self, policy: str, values: dict[str, float]) -> dict[str, tuple[int, float, float]]:
        """Add each subject's value to its baseline; returns each subject's (count, mean, standard
        deviation) from *before* this value."""

    @abstractmethod
    async def count_recent(self, action_types: list[str], user_id: str, since_ms: int) -> int:
        """Activities of these action types performed by ``user_id`` since ``since_ms``."""

    @abstractmethod
    async def user_principal_name(self, user_id: str) -> str | None:
        """The directory user's userPrincipalName (None when there is no such user)."""

    @abstractmethod
    async def app_risk(self, app_id: str) -> tuple[str, int | None, str | None]:
        """(name, risk score 0-10 or None when unknown, governance status) of a catalogue app."""


def user_entity(user_id: str | None, upn: str | None) -> dict[str, Any]:
    return {"entityRole": "Source", "id": user_id or upn, "label": upn, "pa": upn, "type": "account"}


def service_entity(app_id: str, name: str) -> dict[str, Any]:
    return {"id": app_id, "label": name, "type": "service"}


def ip_entity(address: str) -> dict[str, Any]:
    return {"id": address, "label": address, "type": "ip"}


class AlertPolicy(ABC):
    """One alert policy. ``defaults`` names every threshold with its default and type; a tenant's settings
    override them (validated by ``thresholds``)."""

    key: str
    name: str
    description: str
    event_types: tuple[str, ...]
    defaults: dict[str, Any] = {}
    choices: dict[str, tuple[Any, ...]] = {}

    def handles(self, event_type: str) -> bool:
        return event_type in self.event_types

    def thresholds(self, given: dict[str, Any]) -> dict[str, Any]:
        """The defaults with ``given`` applied; a clear error for an unknown name or a wrong type."""
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise BadRequest(
                f"Policy '{self.key}' has no threshold {unknown}; it has {sorted(self.defaults) or 'none'}."
            )
        merged = dict(self.defaults)
        for name, value in given.items():
            default = self.defaults[name]
            if name in self.choices:
                if value not in self.choices[name]:
                    raise BadRequest(f"'{name}' of policy '{self.key}' is one of {list(self.choices[name])}.")
            elif isinstance(default, bool) or isinstance(value, bool):
                if not isinstance(value, bool) or not isinstance(default, bool):
                    raise BadRequest(f"'{name}' of policy '{self.key}' takes {type(default).__name__}.")
            elif isinstance(default, int | float):
                if not isinstance(value, int | float) or value < 0:
                    raise BadRequest(f"'{name}' of policy '{self.key}' takes a number ≥ 0.")
            merged[name] = value
        return merged

    @abstractmethod
    async def evaluate(
        self,
        ctx: PolicyContext,
        thresholds: dict[str, Any],
        event: EventView,
        activities: list[ActivityDraft],
    ) -> list[Finding]: ...
