"""keep each user's feature counts in one row (``protection_user_counts``)

A user's first decision in a process reads every count of the user. As rows of ``protection_feature_counts``
(subject = the user: ~90 for a user with a few months of history, written over months among every other
user's) that read cost ~490 us on PostgreSQL at a 10,000-user tenant, ~260 us for one row holding them all
(docs/benchmarks.md). The user's rows move into one JSON object per user, ``{feature: {value: count}}``;
``first_seen_at`` keeps when the user's history started (the first-seen time of the user's "ip" "#total"
row, which is the only one the model reads). The tenant-wide rows (subject "*") stay where they are.

The downgrade writes the rows back, each with the user's history start as its first-seen time (the other
rows' times were never read).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustplane.core.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# {feature: {value: count}} per user, first seen = the user's history start (ip #total's first-seen time, else
# the earliest); SQLite's inner objects are text, read as JSON again by json().
_MOVE = {
    "sqlite": """
        INSERT INTO protection_user_counts (tenant_id, user_id, counts, revision, first_seen_at)
        SELECT tenant_id, subject, json_group_object(feature, json(counts)), 1,
               coalesce(min(history_start), min(first_seen))
        FROM (
            SELECT tenant_id, subject, feature, json_group_object(value, count) AS counts,
                   min(CASE WHEN feature = 'ip' AND value = '#total' THEN first_seen_at END) AS history_start,
                   min(first_seen_at) AS first_seen
            FROM protection_feature_counts WHERE subject <> '*' GROUP BY tenant_id, subject, feature
        ) AS per_feature
        GROUP BY tenant_id, subject
    """,
    "postgresql": """
        INSERT INTO protection_user_counts (tenant_id, user_id, counts, revision, first_seen_at)
        SELECT tenant_id, subject, json_object_agg(feature, counts)::text, 1,
               coalesce(min(history_start), min(first_seen))
        FROM (
            SELECT tenant_id, subject, feature, json_object_agg(value, count) AS counts,
                   min(CASE WHEN feature = 'ip' AND value = '#total' THEN first_seen_at END) AS history_start,
                   min(first_seen_at) AS first_seen
            FROM protection_feature_counts WHERE subject <> '*' GROUP BY tenant_id, subject, feature
        ) AS per_feature
        GROUP BY tenant_id, subject
    """,
}

# Each user's counts as rows again, every row with the user's history start as its first-seen time.
_EXPAND = {
    "sqlite": (
        "SELECT u.tenant_id, u.user_id, f.key, v.key, v.value, u.first_seen_at "
        "FROM protection_user_counts AS u, json_each(u.counts) AS f, json_each(f.value) AS v"
    ),
    "postgresql": (
        "SELECT u.tenant_id, u.user_id, f.key, v.key, v.value::text::integer, u.first_seen_at "
        "FROM protection_user_counts AS u, json_each(u.counts::json) AS f, json_each(f.value) AS v"
    ),
}


def upgrade() -> None:
    op.create_table(
        "protection_user_counts",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", trustplane.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_protection_user_counts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name="pk_protection_user_counts"),
    )
    op.execute(_MOVE[op.get_bind().dialect.name])
    op.execute("DELETE FROM protection_feature_counts WHERE subject <> '*'")


def downgrade() -> None:
    op.execute(
        "INSERT INTO protection_feature_counts (tenant_id, subject, feature, value, count, first_seen_at) "
        + _EXPAND[op.get_bind().dialect.name]
    )
    op.drop_table("protection_user_counts")
