"""Durable domain events: ``emit`` writes the event and one job per subscribed handler in the caller's
transaction (an outbox), so a change and its consequences commit or vanish together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.models import Event, Job


@dataclass(frozen=True)
class Actor:
    """Who made a change: an app (client credentials), an API token, a user, or the system itself."""

    type: str
    id: str
    name: str = ""
    # The face a change came through when it matters downstream ("scim": provisioning, as the activity
    # log tells it apart); empty otherwise and then left out of the event.
    channel: str = ""

    def as_dict(self) -> dict[str, str]:
        actor = {"type": self.type, "id": self.id, "name": self.name}
        if self.channel:
            actor["channel"] = self.channel
        return actor


SYSTEM = Actor(type="system", id="system", name="TrustPlane")

# event type prefix -> job kinds that consume it. Parts register their handlers at import time.
_SUBSCRIPTIONS: dict[str, list[str]] = {}


def subscribe(event_prefix: str, job_kind: str) -> None:
    kinds = _SUBSCRIPTIONS.setdefault(event_prefix, [])
    if job_kind not in kinds:
        kinds.append(job_kind)


def subscribers(event_type: str) -> list[str]:
    kinds: list[str] = []
    for prefix, subscribed in _SUBSCRIPTIONS.items():
        if event_type.startswith(prefix):
            kinds.extend(k for k in subscribed if k not in kinds)
    return kinds


@dataclass
class EventSpec:
    type: str
    subject_type: str
    subject_id: str
    data: dict[str, Any] = field(default_factory=dict)


async def emit(session: AsyncSession, tenant_id: str, actor: Actor, spec: EventSpec) -> Event:
    event = Event(
        tenant_id=tenant_id,
        type=spec.type,
        subject_type=spec.subject_type,
        subject_id=spec.subject_id,
        actor=actor.as_dict(),
        data=spec.data,
    )
    session.add(event)
    await session.flush()
    for kind in subscribers(spec.type):
        session.add(Job(tenant_id=tenant_id, kind=kind, payload={"event_id": event.id}))
    return event
