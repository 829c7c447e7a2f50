"""Identity protection tables: sign-ins, risk detections, risky users and their history, the tenant's
threat-intelligence IP list and leaked-credential hashes, and the feature counts of the unfamiliar
sign-in properties model. Every row carries ``tenant_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from trustplane.core.clock import utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id


class SignIn(Base):
    """One sign-in attempt (Graph ``signIn``), TrustPlane's own or ingested from another identity provider
    (``source`` names it; ``external_id`` is that provider's event id, unique per source)."""

    __tablename__ = "sign_ins"
    __table_args__ = (UniqueConstraint("tenant_id", "source", "external_id", name="uq_sign_ins_event"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(64), default="trustplane")
    external_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    user_principal_name: Mapped[str] = mapped_column(String(320))
    user_display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    app_id: Mapped[str | None] = mapped_column(String(64), default=None)
    app_display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    client_app_used: Mapped[str | None] = mapped_column(String(64), default=None)
    is_interactive: Mapped[bool] = mapped_column(Boolean, default=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64), default=None)
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    city: Mapped[str | None] = mapped_column(String(128), default=None)
    state: Mapped[str | None] = mapped_column(String(128), default=None)
    latitude: Mapped[float | None] = mapped_column(Float, default=None)
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    asn: Mapped[int | None] = mapped_column(Integer, default=None)
    # "private" | "tor" | "vpn" | "admin" (an admin-listed anonymiser); None for an ordinary public address.
    network_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    user_agent: Mapped[str | None] = mapped_column(Text, default=None)
    device_detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error_code: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(512), default=None)
    password_valid: Mapped[bool | None] = mapped_column(Boolean, default=None)
    risk_score: Mapped[float] = mapped_column(Float, default=0.0)
    risk_level_during_sign_in: Mapped[str] = mapped_column(String(16), default="none")
    risk_level_aggregated: Mapped[str] = mapped_column(String(16), default="none")
    risk_state: Mapped[str] = mapped_column(String(32), default="none")
    risk_detail: Mapped[str] = mapped_column(String(64), default="none")
    risk_event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    conditional_access_status: Mapped[str] = mapped_column(String(16), default="notApplied")
    applied_policies: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


Index("ix_sign_ins_tenant_created", SignIn.tenant_id, SignIn.created_at)
Index("ix_sign_ins_tenant_user_created", SignIn.tenant_id, SignIn.user_id, SignIn.created_at)
Index("ix_sign_ins_tenant_ip_created", SignIn.tenant_id, SignIn.ip_address, SignIn.created_at)


class RiskDetection(Base):
    """One risk detection (Graph ``riskDetection``). ``sign_in_id`` is the sign-in it came from (Graph's
    ``requestId``), None for detections not linked to a sign-in (admin confirmation, leaked credentials)."""

    __tablename__ = "risk_detections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36))
    user_principal_name: Mapped[str | None] = mapped_column(String(320), default=None)
    user_display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    sign_in_id: Mapped[str | None] = mapped_column(String(36), default=None)
    correlation_id: Mapped[str | None] = mapped_column(String(64), default=None)
    risk_event_type: Mapped[str] = mapped_column(String(64))
    risk_level: Mapped[str] = mapped_column(String(16))
    risk_state: Mapped[str] = mapped_column(String(32), default="atRisk")
    risk_detail: Mapped[str] = mapped_column(String(64), default="none")
    source: Mapped[str] = mapped_column(String(64), default="IdentityProtection")
    detection_timing_type: Mapped[str] = mapped_column(String(16), default="realtime")
    activity: Mapped[str] = mapped_column(String(16), default="signin")
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    city: Mapped[str | None] = mapped_column(String(128), default=None)
    activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    additional_info: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


Index(
    "ix_risk_detections_tenant_user_state",
    RiskDetection.tenant_id,
    RiskDetection.user_id,
    RiskDetection.risk_state,
)
Index("ix_risk_detections_tenant_detected", RiskDetection.tenant_id, RiskDetection.detected_at)


class RiskyUser(Base):
    """A user's current risk (Graph ``riskyUser``); ``id`` is the user's id."""

    __tablename__ = "risky_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_principal_name: Mapped[str | None] = mapped_column(String(320), default=None)
    user_display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    risk_level: Mapped[str] = mapped_column(String(16), default="none")
    risk_state: Mapped[str] = mapped_column(String(32), default="none")
    risk_detail: Mapped[str] = mapped_column(String(64), default="none")
    risk_last_updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_processing: Mapped[bool] = mapped_column(Boolean, default=False)


Index("ix_risky_users_tenant_id", RiskyUser.tenant_id, RiskyUser.id)
Index("ix_risky_users_tenant_level", RiskyUser.tenant_id, RiskyUser.risk_level)


class RiskyUserHistory(Base):
    """One change of a user's risk (Graph ``riskyUserHistoryItem``)."""

    __tablename__ = "risky_user_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36))
    user_principal_name: Mapped[str | None] = mapped_column(String(320), default=None)
    user_display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    risk_level: Mapped[str] = mapped_column(String(16))
    risk_state: Mapped[str] = mapped_column(String(32))
    risk_detail: Mapped[str] = mapped_column(String(64))
    risk_last_updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activity_detail: Mapped[str] = mapped_column(String(64), default="none")
    risk_event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    initiated_by: Mapped[str | None] = mapped_column(String(64), default=None)


Index(
    "ix_risky_user_history_tenant_user",
    RiskyUserHistory.tenant_id,
    RiskyUserHistory.user_id,
    RiskyUserHistory.risk_last_updated_at,
)


class ThreatIntelAddress(Base):
    """An admin-managed IP range: ``kind`` "malicious" (maliciousIPAddress) or "anonymizer" (added to the
    anonymiser ranges the package ships)."""

    __tablename__ = "threat_intel_addresses"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "cidr", name="uq_threat_intel_addresses_range"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    cidr: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(256), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LeakedCredential(Base):
    """The SHA-1 (upper-case hex, as Have I Been Pwned publishes them) of a password known to be leaked."""

    __tablename__ = "leaked_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "sha1", name="uq_leaked_credentials_sha1"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    sha1: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeatureCount(Base):
    """How often a feature value was seen in successful sign-ins: ``subject`` is a user id or "*" (the whole
    tenant); ``value`` "=<value>" for a value, "#total" for the number of observations and "#distinct" for
    the number of distinct values (Freeman et al.'s N and M)."""

    __tablename__ = "protection_feature_counts"
    # A user's counts are read together at the user's first decision in a process (migration 0012): SQLite
    # keeps the rows in primary-key order, so they are neighbours instead of one lookup each; PostgreSQL's
    # primary key carries the count and the time, so the read is the index's (an index-only scan).
    __table_args__ = (
        PrimaryKeyConstraint(
            "tenant_id",
            "subject",
            "feature",
            "value",
            name="pk_protection_feature_counts",
            postgresql_include=["count", "first_seen_at"],
        ),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(36))
    feature: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(512))
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserFeatureCounts(Base):
    """Every feature count of one user in one row (migration 0013): ``counts`` is a JSON object
    ``{feature: {value as stored: count}}`` with the keys ``protection_feature_counts`` uses ("=<value>",
    "#total", "#distinct"); ``revision`` goes up by one with every write (a writer that read revision n
    writes only where it is still n: ``UserCountsRepository.observe``); ``first_seen_at`` is when the user's
    history started (the first learned sign-in).

    A user's first decision in a process reads all of the user's counts: one row here, where it was ~90 rows
    scattered through the table of counts (written over months, among every other user's) — on PostgreSQL
    ~490 us against ~260 us for the round trip at a 10,000-user tenant (docs/benchmarks.md)."""

    __tablename__ = "protection_user_counts"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "user_id", name="pk_protection_user_counts"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36))
    counts: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
