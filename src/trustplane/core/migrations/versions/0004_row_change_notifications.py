"""row change notifications for the per-process row cache (PostgreSQL)

Every UPDATE or DELETE of a user (by any process, any code path, cascades included) sends
NOTIFY trustplane_row_changes 'users:<id>' in its own transaction, delivered at commit; a TRUNCATE sends
'users:*'. Each server process LISTENs and drops the row from its cache (core.cache). Inserts need no
notice: the cache never remembers a row that does not exist. SQLite has no cross-process notification,
so there the cache stays off and nothing is created.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CACHED_TABLES = ("users",)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION trustplane_notify_row_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('trustplane_row_changes', TG_TABLE_NAME || ':*');
            ELSE
                PERFORM pg_notify('trustplane_row_changes', TG_TABLE_NAME || ':' || OLD.id);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for table in CACHED_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_row_change AFTER UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION trustplane_notify_row_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_notify_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION trustplane_notify_row_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in CACHED_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_row_change ON {table}")
    op.execute("DROP FUNCTION IF EXISTS trustplane_notify_row_change()")
