"""conditional access: policies, named locations, per-tenant policy revision

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import trustplane.core.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ca_policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("template_id", sa.String(length=64), nullable=True),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_ca_policies_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_policies")),
    )
    op.create_index("ix_ca_policies_tenant_id", "ca_policies", ["tenant_id", "id"])
    op.create_index(
        "ix_ca_policies_tenant_display_name",
        "ca_policies",
        ["tenant_id", sa.literal_column("lower(display_name)")],
    )
    op.create_table(
        "ca_named_locations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("is_trusted", sa.Boolean(), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified_at", trustplane.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ca_named_locations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_named_locations")),
    )
    op.create_index("ix_ca_named_locations_tenant_id", "ca_named_locations", ["tenant_id", "id"])
    op.create_index(
        "ix_ca_named_locations_tenant_display_name",
        "ca_named_locations",
        ["tenant_id", sa.literal_column("lower(display_name)")],
    )
    op.create_table(
        "ca_revisions",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_ca_revisions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_ca_revisions")),
    )


def downgrade() -> None:
    op.drop_table("ca_revisions")
    op.drop_index("ix_ca_named_locations_tenant_display_name", table_name="ca_named_locations")
    op.drop_index("ix_ca_named_locations_tenant_id", table_name="ca_named_locations")
    op.drop_table("ca_named_locations")
    op.drop_index("ix_ca_policies_tenant_display_name", table_name="ca_policies")
    op.drop_index("ix_ca_policies_tenant_id", table_name="ca_policies")
    op.drop_table("ca_policies")
