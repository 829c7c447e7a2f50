"""The one source of "now" (UTC), so tests can move time without patching datetime."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything TrustPlane stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: datetime | None) -> str | None:
    """ISO 8601 with a trailing Z, as Graph and SCIM show times."""
    if value is None:
        return None
    return to_utc(value).isoformat().replace("+00:00", "Z")
