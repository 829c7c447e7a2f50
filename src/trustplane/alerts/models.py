"""Alerts and activities tables: the activity log (one row per sign-in, admin change, provisioning action,
protection or discovery event), alerts with MCAS's fields, per-tenant alert policy settings and baselines,
webhook subscriptions and their delivery log. Every row carries ``tenant_id``.

Times that MCAS filters and sorts on (an activity's ``timestamp`` and ``created``, an alert's ``timestamp``
and ``resolveTime``) are stored as UTC epoch milliseconds, the unit MCAS speaks: filters compare integers
and the hot indexes stay narrow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trustplane.core.clock import utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id

# An auto-incrementing big integer on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Activity(Base):
    """One activity (MCAS's activity record). ``seq`` orders activities by when they were saved (MCAS's
    ``created`` sort), so paging in that order is stable while new activities arrive; ``event_id`` is the
    domain event it came from (with ``event_part``, unique: the writer is idempotent)."""

    __tablename__ = "activities"
    __table_args__ = (UniqueConstraint("tenant_id", "event_id", "event_part", name="uq_activities_event"),)

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    event_part: Mapped[int] = mapped_column(Integer, default=0)  # an event may make several activities
    timestamp: Mapped[int] = mapped_column(BigInteger)  # when it happened, epoch ms
    created: Mapped[int] = mapped_column(BigInteger)  # when it was saved, epoch ms
    action_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))  # MCAS eventTypeName: SignIn, UserManagement, …
    description: Mapped[str] = mapped_column(String(512))
    source: Mapped[int] = mapped_column(Integer)  # MCAS source types: 2 app connector, 5 discovery
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    succeeded: Mapped[bool] = mapped_column(Boolean, default=True)
    user_name: Mapped[str | None] = mapped_column(String(320), default=None)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    user_domain: Mapped[str | None] = mapped_column(String(256), default=None)
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    city: Mapped[str | None] = mapped_column(String(128), default=None)
    app_id: Mapped[str | None] = mapped_column(String(64), default=None)
    app_name: Mapped[str | None] = mapped_column(String(256), default=None)
    user_agent: Mapped[str | None] = mapped_column(Text, default=None)
    object_type: Mapped[str | None] = mapped_column(String(32), default=None)
    object_id: Mapped[str | None] = mapped_column(String(64), default=None)
    object_name: Mapped[str | None] = mapped_column(String(320), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    feedback: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)


# The list's default order and the date filter; user, app and action type each with the date, so a list
# filtered by one of them and a date range reads one index range in date order; user or app with an action
# type and a date (the common three-filter question) reads exactly its matches, and counts them from the
# index alone.
Index("ix_activities_tenant_timestamp", Activity.tenant_id, Activity.timestamp, Activity.seq)
Index("ix_activities_tenant_user_timestamp", Activity.tenant_id, Activity.user_name, Activity.timestamp)
Index(
    "ix_activities_tenant_user_action_timestamp",
    Activity.tenant_id,
    Activity.user_name,
    Activity.action_type,
    Activity.timestamp,
)
Index("ix_activities_tenant_app_timestamp", Activity.tenant_id, Activity.app_id, Activity.timestamp)
Index(
    "ix_activities_tenant_app_action_timestamp",
    Activity.tenant_id,
    Activity.app_id,
    Activity.action_type,
    Activity.timestamp,
)
Index("ix_activities_tenant_action_timestamp", Activity.tenant_id, Activity.action_type, Activity.timestamp)
Index("ix_activities_tenant_ip_timestamp", Activity.tenant_id, Activity.ip_address, Activity.timestamp)


class Alert(Base):
    """One alert (MCAS's alert). At most one open alert per (policy, subject): a policy that fires again on
    the same subject updates it (``occurrences``, ``last_seen``) instead of raising another."""

    __tablename__ = "alerts"

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    policy: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(400))  # what the policy raised it about (dedup key)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[int] = mapped_column(Integer)  # 0 low, 1 medium, 2 high
    status: Mapped[int] = mapped_column(Integer, default=0)  # 0 unread, 1 read, 2 archived
    resolution_status: Mapped[int] = mapped_column(Integer, default=0)  # 0 open, 3 FP, 4 benign, 5 TP
    stories: Mapped[list[int]] = mapped_column(JSONType, default=list)
    intent: Mapped[list[int]] = mapped_column(JSONType, default=list)
    entities: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    evidence: Mapped[list[str]] = mapped_column(JSONType, default=list)
    activity_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    entity_user: Mapped[str | None] = mapped_column(String(320), default=None)
    entity_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    entity_app: Mapped[str | None] = mapped_column(String(64), default=None)
    threat_score: Mapped[int] = mapped_column(Integer, default=0)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    timestamp: Mapped[int] = mapped_column(BigInteger)  # raised, epoch ms
    last_seen: Mapped[int] = mapped_column(BigInteger)
    resolve_time: Mapped[int | None] = mapped_column(BigInteger, default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    reason_id: Mapped[int | None] = mapped_column(Integer, default=None)
    handled_by: Mapped[str | None] = mapped_column(String(320), default=None)
    feedback: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)


Index("ix_alerts_tenant_timestamp", Alert.tenant_id, Alert.timestamp)
Index(
    "uq_alerts_open_subject",
    Alert.tenant_id,
    Alert.policy,
    Alert.subject,
    unique=True,
    postgresql_where=Alert.resolution_status == 0,
    sqlite_where=Alert.resolution_status == 0,
)


class AlertPolicySetting(Base):
    """A tenant's choices for one alert policy: enabled or not, and its thresholds (absent: the defaults)."""

    __tablename__ = "alert_policy_settings"
    __table_args__ = (UniqueConstraint("tenant_id", "policy", name="uq_alert_policy_settings_policy"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    policy: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertBaseline(Base):
    """Running statistics a policy keeps per subject (Welford's mean and variance), e.g. a user's upload
    volume to an app per discovery upload, and the subjects a policy has already seen."""

    __tablename__ = "alert_baselines"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(400), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    mean: Mapped[float] = mapped_column(default=0.0)
    m2: Mapped[float] = mapped_column(default=0.0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookSubscription(Base):
    """A tenant's webhook endpoint. ``secret`` is the Standard Webhooks signing secret (``whsec_…``): the
    signer needs it in clear, so it is stored as is (it signs; it does not authenticate anyone to
    TrustPlane) and shown once at creation."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(256), default=None)
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty: every event type
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One message to one subscription and every attempt at it (the delivery log). The message id is the
    Standard Webhooks ``webhook-id``: the same on every retry, so a receiver can drop duplicates."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
