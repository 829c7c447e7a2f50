"""cloud discovery: reports, uploads with their checkpoint, aggregates, unmatched, settings, governance

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import trustplane.core.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC = trustplane.core.db.UTCDateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def _stream_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["stream_id"],
        ["discovery_streams.id"],
        name=op.f(f"fk_{table}_stream_id_discovery_streams"),
        ondelete="CASCADE",
    )


def _sums() -> list[sa.Column]:
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in ("transactions", "blocked", "bytes_up", "bytes_down", "traffic")
    ]


def upgrade() -> None:
    op.create_table(
        "discovery_streams",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("is_snapshot", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_data_received", UTC, nullable=True),
        _tenant_fk("discovery_streams"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_streams")),
        sa.UniqueConstraint("tenant_id", "name", "is_snapshot", name=op.f("uq_discovery_streams_tenant_id")),
    )
    op.create_index(op.f("ix_discovery_streams_tenant_id"), "discovery_streams", ["tenant_id"])
    op.create_table(
        "discovery_uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stream_id", sa.String(length=36), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("parser_state", JSON, nullable=False),
        sa.Column("stats", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", JSON, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("uploaded_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        _tenant_fk("discovery_uploads"),
        _stream_fk("discovery_uploads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_uploads")),
    )
    op.create_index(op.f("ix_discovery_uploads_tenant_id"), "discovery_uploads", ["tenant_id"])
    op.create_index(op.f("ix_discovery_uploads_stream_id"), "discovery_uploads", ["stream_id"])
    op.create_table(
        "discovery_aggregates",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=256), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_sums(),
        _tenant_fk("discovery_aggregates"),
        _stream_fk("discovery_aggregates"),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "stream_id",
            "app_id",
            "user_name",
            "ip_address",
            "day",
            name=op.f("pk_discovery_aggregates"),
        ),
    )
    op.create_index(
        "ix_discovery_aggregates_stream_app", "discovery_aggregates", ["tenant_id", "stream_id", "app_id"]
    )
    op.create_table(
        "discovery_unmatched",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("destination", sa.String(length=256), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_sums(),
        _tenant_fk("discovery_unmatched"),
        _stream_fk("discovery_unmatched"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "stream_id", "destination", "day", name=op.f("pk_discovery_unmatched")
        ),
    )
    op.create_table(
        "discovery_settings",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("custom_parser", JSON, nullable=True),
        sa.Column("score_settings", JSON, nullable=False),
        sa.Column("modified_at", UTC, nullable=False),
        _tenant_fk("discovery_settings"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_discovery_settings")),
    )
    op.create_table(
        "discovery_app_governance",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("risk_override", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("modified_at", UTC, nullable=False),
        _tenant_fk("discovery_app_governance"),
        sa.PrimaryKeyConstraint("tenant_id", "app_id", name=op.f("pk_discovery_app_governance")),
    )


def downgrade() -> None:
    op.drop_table("discovery_app_governance")
    op.drop_table("discovery_settings")
    op.drop_table("discovery_unmatched")
    op.drop_index("ix_discovery_aggregates_stream_app", table_name="discovery_aggregates")
    op.drop_table("discovery_aggregates")
    op.drop_index(op.f("ix_discovery_uploads_stream_id"), table_name="discovery_uploads")
    op.drop_index(op.f("ix_discovery_uploads_tenant_id"), table_name="discovery_uploads")
    op.drop_table("discovery_uploads")
    op.drop_index(op.f("ix_discovery_streams_tenant_id"), table_name="discovery_streams")
    op.drop_table("discovery_streams")
