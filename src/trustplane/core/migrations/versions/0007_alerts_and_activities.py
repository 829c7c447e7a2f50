"""alerts and activities: activities, alerts, alert policy settings and baselines, webhooks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import trustplane.core.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_part", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("action_type", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("source", sa.Integer(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("user_name", sa.String(length=320), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("user_domain", sa.String(length=256), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("city", sa.String(length=128), nullable=True),
        sa.Column("app_id", sa.String(length=64), nullable=True),
        sa.Column("app_name", sa.String(length=256), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("object_type", sa.String(length=32), nullable=True),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("object_name", sa.String(length=320), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("feedback", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_activities_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_activities")),
        sa.UniqueConstraint("id", name=op.f("uq_activities_id")),
        sa.UniqueConstraint("tenant_id", "event_id", "event_part", name="uq_activities_event"),
    )
    op.create_index(
        "ix_activities_tenant_action_timestamp",
        "activities",
        ["tenant_id", "action_type", "timestamp"],
        unique=False,
    )
    op.create_index(
        "ix_activities_tenant_app_timestamp", "activities", ["tenant_id", "app_id", "timestamp"], unique=False
    )
    op.create_index(
        "ix_activities_tenant_ip_timestamp",
        "activities",
        ["tenant_id", "ip_address", "timestamp"],
        unique=False,
    )
    op.create_index(
        "ix_activities_tenant_timestamp", "activities", ["tenant_id", "timestamp", "seq"], unique=False
    )
    op.create_index(
        "ix_activities_tenant_user_timestamp",
        "activities",
        ["tenant_id", "user_name", "timestamp"],
        unique=False,
    )
    op.create_index(
        "ix_activities_tenant_user_action_timestamp",
        "activities",
        ["tenant_id", "user_name", "action_type", "timestamp"],
        unique=False,
    )
    op.create_index(
        "ix_activities_tenant_app_action_timestamp",
        "activities",
        ["tenant_id", "app_id", "action_type", "timestamp"],
        unique=False,
    )
    op.create_table(
        "alert_baselines",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("mean", sa.Double(), nullable=False),
        sa.Column("m2", sa.Double(), nullable=False),
        sa.Column("updated_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_alert_baselines_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "policy", "subject", name=op.f("pk_alert_baselines")),
    )
    op.create_table(
        "alert_policy_settings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("thresholds", JSON, nullable=False),
        sa.Column("modified_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_alert_policy_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_policy_settings")),
        sa.UniqueConstraint("tenant_id", "policy", name="uq_alert_policy_settings_policy"),
    )
    op.create_table(
        "alerts",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("resolution_status", sa.Integer(), nullable=False),
        sa.Column("stories", JSON, nullable=False),
        sa.Column("intent", JSON, nullable=False),
        sa.Column("entities", JSON, nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("activity_ids", JSON, nullable=False),
        sa.Column("entity_user", sa.String(length=320), nullable=True),
        sa.Column("entity_ip", sa.String(length=64), nullable=True),
        sa.Column("entity_app", sa.String(length=64), nullable=True),
        sa.Column("threat_score", sa.Integer(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("resolve_time", sa.BigInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("reason_id", sa.Integer(), nullable=True),
        sa.Column("handled_by", sa.String(length=320), nullable=True),
        sa.Column("feedback", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_alerts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_alerts")),
        sa.UniqueConstraint("id", name=op.f("uq_alerts_id")),
    )
    op.create_index("ix_alerts_tenant_timestamp", "alerts", ["tenant_id", "timestamp"], unique=False)
    op.create_index(
        "uq_alerts_open_subject",
        "alerts",
        ["tenant_id", "policy", "subject"],
        unique=True,
        postgresql_where=sa.text("resolution_status = 0"),
        sqlite_where=sa.text("resolution_status = 0"),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_subscriptions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("log", JSON, nullable=False),
        sa.Column("created_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_subscription_id"), "webhook_deliveries", ["subscription_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
    op.drop_table("alerts")
    op.drop_table("alert_policy_settings")
    op.drop_table("alert_baselines")
    op.drop_table("activities")
