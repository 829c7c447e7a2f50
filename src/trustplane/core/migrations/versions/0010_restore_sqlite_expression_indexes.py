"""restore the directory's expression indexes on SQLite (0002's batch rebuild of users / groups dropped them)

SQLite cannot reflect expression indexes, so the copy-and-move rebuild that batch mode did in 0002 left out
users' unique lower(userPrincipalName) index and the lower(mail) / lower(displayName) lookups of users and
groups. PostgreSQL altered the tables in place and kept them; there this migration does nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 08:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_users_tenant_upn ON users (tenant_id, lower(user_principal_name))",
    "CREATE INDEX IF NOT EXISTS ix_users_tenant_mail ON users (tenant_id, lower(mail))",
    "CREATE INDEX IF NOT EXISTS ix_users_tenant_display_name ON users (tenant_id, lower(display_name))",
    "CREATE INDEX IF NOT EXISTS ix_groups_tenant_mail ON groups (tenant_id, lower(mail))",
    "CREATE INDEX IF NOT EXISTS ix_groups_tenant_display_name ON groups (tenant_id, lower(display_name))",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # A database that already holds two users whose UPNs differ only in case stops here with SQLite's
    # "UNIQUE constraint failed" naming the index: rename one of them, then migrate again.
    for statement in INDEXES:
        op.execute(statement)


def downgrade() -> None:
    pass  # the indexes belong to 0001's schema
