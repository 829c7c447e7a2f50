"""scim: per-object versions (ETags), externalId, SCIM userName and SCIM-only attributes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    for table in ("users", "groups"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
            batch.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
            batch.add_column(
                sa.Column("scim_attributes", JSON, server_default=sa.text("'{}'"), nullable=False)
            )
        op.create_index(f"ix_{table}_tenant_external_id", table, ["tenant_id", "external_id"], unique=False)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("user_name", sa.String(length=256), nullable=True))
    op.create_index(
        "uq_users_tenant_user_name",
        "users",
        ["tenant_id", sa.literal_column("lower(user_name)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_users_tenant_user_name", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("user_name")
    for table in ("users", "groups"):
        op.drop_index(f"ix_{table}_tenant_external_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("scim_attributes")
            batch.drop_column("external_id")
            batch.drop_column("version")
