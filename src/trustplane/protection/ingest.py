"""Sign-in events from other identity providers, so TrustPlane can protect identities it does not
authenticate. A batch names its ``source``; each event carries that provider's ``eventId`` and a
Graph-``signIn``-shaped record. Each event is checked on its own (a bad one gets a per-event error and the
others go on), assessed like TrustPlane's own sign-ins and stored once: an ``eventId`` already stored for
the source, or repeated within the batch, is reported as a duplicate and changes nothing, so replaying a
batch is harmless."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.errors import BadRequest
from trustplane.core.ids import is_uuid
from trustplane.protection import ipintel, service
from trustplane.protection.repository import SignInRepository

MAX_EVENTS = 1000
SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EVENT_PROPERTIES = frozenset(
    {
        "eventId",
        "createdDateTime",
        "userId",
        "userPrincipalName",
        "userDisplayName",
        "appId",
        "appDisplayName",
        "clientAppUsed",
        "isInteractive",
        "ipAddress",
        "userAgent",
        "correlationId",
        "status",
        "passwordValid",
        "location",
        "autonomousSystemNumber",
        "deviceDetail",
    }
)


class EventError(ValueError):
    pass


@dataclass
class IngestResult:
    results: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)


def _string(event: dict[str, Any], key: str, *, required: bool = False, limit: int = 512) -> str | None:
    value = event.get(key)
    if value is None:
        if required:
            raise EventError(f"'{key}' is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise EventError(f"'{key}' must be a non-empty string." if required else f"'{key}' must be a string.")
    if len(value) > limit:
        raise EventError(f"'{key}' is longer than {limit} characters.")
    if "\x00" in value:
        raise EventError(f"'{key}' contains a NUL character.")
    return value


def _number(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EventError(f"'{key}' must be a number from {low:g} to {high:g}.")
    return float(value)


def parse_event(event: Any, source: str) -> service.SignInAttempt:
    """An event as a sign-in attempt, or ``EventError`` saying what is wrong with it."""
    if not isinstance(event, dict):
        raise EventError("An event must be a JSON object.")
    unknown = sorted(k for k in event if k not in EVENT_PROPERTIES)
    if unknown:
        raise EventError(f"'{unknown[0]}' is not a property of a sign-in event.")
    event_id = _string(event, "eventId", required=True, limit=128)
    raw_time = _string(event, "createdDateTime", required=True, limit=64) or ""
    try:
        at = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EventError(f"'createdDateTime' is not an ISO 8601 date and time: '{raw_time}'.") from exc
    if at.tzinfo is None:
        raise EventError("'createdDateTime' needs a time zone (e.g. a trailing Z).")
    user_id = _string(event, "userId", limit=36)
    if user_id is not None and not is_uuid(user_id):
        raise EventError("'userId' must be a GUID.")
    upn = _string(event, "userPrincipalName", limit=320)
    if upn is None and user_id is None:
        raise EventError("'userPrincipalName' (or 'userId') is required.")
    ip = _string(event, "ipAddress", limit=64)
    if ip is not None and ipintel.parse(ip) is None:
        raise EventError(f"'ipAddress' is not an IP address: '{ip}'.")
    status = event.get("status") or {}
    if not isinstance(status, dict):
        raise EventError("'status' must be an object with 'errorCode' and 'failureReason'.")
    error_code = status.get("errorCode", 0)
    if isinstance(error_code, bool) or not isinstance(error_code, int):
        raise EventError("'status.errorCode' must be an integer (0 for success).")
    failure = status.get("failureReason")
    if failure is not None and not isinstance(failure, str):
        raise EventError("'status.failureReason' must be a string.")
    password_valid = event.get("passwordValid")
    if password_valid is not None and not isinstance(password_valid, bool):
        raise EventError("'passwordValid' must be true or false.")
    interactive = event.get("isInteractive", True)
    if not isinstance(interactive, bool):
        raise EventError("'isInteractive' must be true or false.")
    location = event.get("location") or {}
    if not isinstance(location, dict):
        raise EventError("'location' must be an object.")
    country = location.get("countryOrRegion")
    if country is not None and not (isinstance(country, str) and re.fullmatch(r"[A-Za-z]{2}", country)):
        raise EventError("'location.countryOrRegion' must be a two-letter country code.")
    coordinates = location.get("geoCoordinates") or {}
    if not isinstance(coordinates, dict):
        raise EventError("'location.geoCoordinates' must be an object.")
    latitude = longitude = None
    if coordinates.get("latitude") is not None or coordinates.get("longitude") is not None:
        latitude = _number(coordinates.get("latitude"), "location.geoCoordinates.latitude", -90, 90)
        longitude = _number(coordinates.get("longitude"), "location.geoCoordinates.longitude", -180, 180)
    asn = event.get("autonomousSystemNumber")
    if asn is not None and (isinstance(asn, bool) or not isinstance(asn, int) or not 0 <= asn < 2**32):
        raise EventError("'autonomousSystemNumber' must be an integer from 0 to 4294967295.")
    device = event.get("deviceDetail") or {}
    if not isinstance(device, dict):
        raise EventError("'deviceDetail' must be an object.")
    for key in ("city", "state"):
        if location.get(key) is not None and not isinstance(location.get(key), str):
            raise EventError(f"'location.{key}' must be a string.")
    return service.SignInAttempt(
        user_principal_name=upn or "",
        user_id=user_id,
        at=at,
        ip_address=ip,
        user_display_name=_string(event, "userDisplayName", limit=256),
        user_agent=_string(event, "userAgent", limit=2048),
        app_id=_string(event, "appId", limit=64),
        app_display_name=_string(event, "appDisplayName", limit=256),
        client_app_used=_string(event, "clientAppUsed", limit=64),
        is_interactive=interactive,
        error_code=error_code,
        failure_reason=failure,
        password_valid=password_valid,
        device_detail=device,
        country=country.upper() if country else None,
        city=location.get("city"),
        state=location.get("state"),
        latitude=latitude,
        longitude=longitude,
        asn=asn,
        correlation_id=_string(event, "correlationId", limit=64),
        source=source,
        external_id=event_id,
    )


def check_batch(body: dict[str, Any]) -> tuple[str, list[Any]]:
    """The batch's source and events, or a ``BadRequest`` for the whole request."""
    unknown = sorted(k for k in body if k not in ("source", "events"))
    if unknown:
        raise BadRequest(
            f"'{unknown[0]}' is not a property of a sign-in batch; it has 'source' and 'events'."
        )
    source = body.get("source")
    if not isinstance(source, str) or not SOURCE.match(source):
        raise BadRequest(
            "'source' is required: the identity provider's name (letters, digits, '.', '_', '-')."
        )
    if source == "trustplane":
        raise BadRequest("'trustplane' is the source of TrustPlane's own sign-ins; name the other provider.")
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise BadRequest("'events' must be a non-empty collection of sign-in events.")
    if len(events) > MAX_EVENTS:
        raise BadRequest(f"A batch holds at most {MAX_EVENTS} events; this one has {len(events)}.")
    return source, events


async def ingest(session: AsyncSession, tenant_id: str, body: dict[str, Any]) -> IngestResult:
    source, events = check_batch(body)
    parsed: list[service.SignInAttempt | EventError] = []
    for event in events:
        try:
            parsed.append(parse_event(event, source))
        except EventError as exc:
            parsed.append(exc)
    ids = [p.external_id for p in parsed if isinstance(p, service.SignInAttempt) and p.external_id]
    stored = await SignInRepository(session, tenant_id).by_event(source, ids)
    seen: dict[str, str] = {k: v.id for k, v in stored.items()}
    result = IngestResult()
    # Assess in time order, so travel and spray see the batch's earlier sign-ins.
    order = sorted(range(len(parsed)), key=lambda i: (not isinstance(parsed[i], EventError), _at(parsed[i])))
    outcomes: dict[int, dict[str, Any]] = {}
    # A savepoint per event on PostgreSQL, so an event stored meanwhile by a concurrent batch becomes a
    # duplicate instead of failing the batch. Not on SQLite: its driver opens no transaction before a
    # SAVEPOINT, which then reads a snapshot that a concurrent writer can outdate ("database is locked");
    # there the batch's first write takes the database's one write lock until the batch commits.
    nested = session.get_bind().dialect.name == "postgresql"
    # The batch's users read together, before the first write: each event's decision then finds its user
    # in this process's cache instead of reading it on its own.
    await service.prefetch(
        session,
        tenant_id,
        [p for p in parsed if isinstance(p, service.SignInAttempt) and (p.external_id or "") not in seen],
    )
    for i in order:
        item = parsed[i]
        if isinstance(item, EventError):
            event_id = events[i].get("eventId") if isinstance(events[i], dict) else None
            outcomes[i] = {
                "eventId": event_id,
                "status": "error",
                "error": {"code": "invalidEvent", "message": str(item)},
            }
            continue
        event_id = item.external_id or ""
        if event_id in seen:
            outcomes[i] = {"eventId": event_id, "status": "duplicate", "id": seen[event_id]}
            continue
        try:
            if nested:
                async with session.begin_nested():
                    assessed = await service.assess(session, tenant_id, item, learn=False)
                    await session.flush()
            else:
                assessed = await service.assess(session, tenant_id, item, learn=False)
                await session.flush()
            # The event's own outcome decides: only a successful sign-in teaches the user's profile.
            await service.learn(session, tenant_id, assessed)
        except IntegrityError:
            # Stored meanwhile by a concurrent batch carrying the same event: a duplicate, not an error.
            again = await SignInRepository(session, tenant_id).by_event(source, [event_id])
            outcomes[i] = {
                "eventId": event_id,
                "status": "duplicate",
                "id": again[event_id].id if again else None,
            }
            continue
        seen[event_id] = assessed.sign_in.id
        outcomes[i] = {
            "eventId": event_id,
            "status": "created",
            "id": assessed.sign_in.id,
            "riskLevelDuringSignIn": assessed.risk_level,
            "riskLevelAggregated": assessed.risk_level_aggregated,
            "riskEventTypes": list(assessed.sign_in.risk_event_types),
        }
    result.results = [{"index": i, **outcomes[i]} for i in range(len(parsed))]
    return result


def _at(item: service.SignInAttempt | EventError) -> datetime:
    return item.at if isinstance(item, service.SignInAttempt) else datetime.min.replace(tzinfo=None)
