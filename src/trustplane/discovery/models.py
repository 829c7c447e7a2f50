"""Cloud discovery tables: the reports (streams), the uploaded log files with their processing checkpoint,
and the aggregates (per app, user, IP and day) and unmatched destinations they produce."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trustplane.core.clock import utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id


class DiscoveryStream(Base):
    """A report: continuous (uploads add to it) or a snapshot, named by ``inputStreamName``."""

    __tablename__ = "discovery_streams"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "is_snapshot"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    is_snapshot: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_data_received: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class DiscoveryUpload(Base):
    """One log file: announced (``upload_url``), stored (``PUT``), queued (``done_upload``), processed.
    ``offset`` / ``parser_state`` / ``stats`` are the checkpoint, committed with each slice's aggregates."""

    __tablename__ = "discovery_uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="awaiting")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    stream_id: Mapped[str | None] = mapped_column(
        ForeignKey("discovery_streams.id", ondelete="CASCADE"), default=None, index=True
    )
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    parser_state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class DiscoveryAggregate(Base):
    """Traffic of one catalogue app by one user from one IP on one day, in one report."""

    __tablename__ = "discovery_aggregates"
    __table_args__ = (Index("ix_discovery_aggregates_stream_app", "tenant_id", "stream_id", "app_id"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        ForeignKey("discovery_streams.id", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(256), primary_key=True)  # "" when the log has none
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" when the log has none
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    transactions: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_up: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_down: Mapped[int] = mapped_column(BigInteger, default=0)
    traffic: Mapped[int] = mapped_column(BigInteger, default=0)


class DiscoveryUnmatched(Base):
    """Traffic to a destination no catalogue app claims: a registrable domain, or an IP when the log has
    no host name."""

    __tablename__ = "discovery_unmatched"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        ForeignKey("discovery_streams.id", ondelete="CASCADE"), primary_key=True
    )
    destination: Mapped[str] = mapped_column(String(256), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    transactions: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_up: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_down: Mapped[int] = mapped_column(BigInteger, default=0)
    traffic: Mapped[int] = mapped_column(BigInteger, default=0)


class DiscoverySettings(Base):
    """Per-tenant discovery settings: the custom log format (MCAS's one default custom parser) and the
    risk score metrics."""

    __tablename__ = "discovery_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    custom_parser: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    score_settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DiscoveryAppGovernance(Base):
    """A tenant's decision about a catalogue app: sanctioned / unsanctioned / monitored, custom tags, and a
    risk score override with its note (MCAS's "App note")."""

    __tablename__ = "discovery_app_governance"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    risk_override: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
