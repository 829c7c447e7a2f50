"""notify changes of users' risk to every process (PostgreSQL)

Identity protection keeps what it reads about a user, the user's risk included, in a per-process cache
(protection.profiles). A user's risk raised by another process (a partner's confirmCompromised handled by
another server) must reach this process's next decision at once, not when the entry ages out. Every INSERT,
UPDATE or DELETE of a ``risky_users`` row now sends NOTIFY trustplane_row_changes 'risky_users:<user id>',
delivered at commit, on the channel the row cache already listens to (migration 0004); a TRUNCATE sends
'risky_users:*'. SQLite has one process (its job queue runs in the server), so nothing is created there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 11:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # 0004's function names OLD.id, which an INSERT has not: this one names the row written.
    op.execute(
        """
        CREATE FUNCTION trustplane_notify_row_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('trustplane_row_changes', TG_TABLE_NAME || ':*');
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('trustplane_row_changes', TG_TABLE_NAME || ':' || OLD.id);
            ELSE
                PERFORM pg_notify('trustplane_row_changes', TG_TABLE_NAME || ':' || NEW.id);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER risky_users_notify_row_write AFTER INSERT OR UPDATE OR DELETE ON risky_users "
        "FOR EACH ROW EXECUTE FUNCTION trustplane_notify_row_write()"
    )
    op.execute(
        "CREATE TRIGGER risky_users_notify_truncate AFTER TRUNCATE ON risky_users "
        "FOR EACH STATEMENT EXECUTE FUNCTION trustplane_notify_row_write()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS risky_users_notify_truncate ON risky_users")
    op.execute("DROP TRIGGER IF EXISTS risky_users_notify_row_write ON risky_users")
    op.execute("DROP FUNCTION IF EXISTS trustplane_notify_row_write()")
