"""a fleet on one catalog: declared host identities, one active job per (model version, host class)

A daemon may run under a declared host id and class (``host_id``,
``host_class`` with ``allow_host_override``: tests, a fleet whose class
detection an operator overrides); ``hosts.declared`` keeps that fact beside
the ISA flags it really detected, so a declared class is never mistaken for a
detected one.

At most one queued or running job per (model version, host class) was a check
in the enqueueing transaction; hosts enqueueing at once (a nightly
``dqd requantize --stale`` on each) could both pass it under read committed.
A partial unique index makes it the database's rule; duplicates an older
catalog may hold are cancelled first, the oldest job kept.

The claim index orders priority descending, as the claim does, so a claim is
an index range scan stopping at its first unlocked row instead of a sort of
the class's whole queue (tests/perf/queue_load.py).

Revision ID: 0008_fleet
Revises: 0007_lost_leases
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_fleet"
down_revision: str | None = "0007_lost_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "state IN ('queued', 'running')"


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of hosts would trip the decisions' foreign keys on SQLite.
    op.add_column("hosts", sa.Column("declared", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE jobs SET state = 'cancelled', last_error = 'superseded: a duplicate of an older active job' "
        f"WHERE {ACTIVE} AND id NOT IN (SELECT min(id) FROM jobs WHERE {ACTIVE} GROUP BY sha256, host_class)"
    )
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.create_index("ix_jobs_claim", "jobs", ["host_class", "state", sa.desc(sa.column("priority")), "id"])
    op.create_index(
        "uq_jobs_one_active",
        "jobs",
        ["sha256", "host_class"],
        unique=True,
        postgresql_where=sa.text(ACTIVE),
        sqlite_where=sa.text(ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_one_active", table_name="jobs")
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.create_index("ix_jobs_claim", "jobs", ["host_class", "state", "priority", "id"])
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("declared")
