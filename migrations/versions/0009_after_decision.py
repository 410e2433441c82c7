"""after the decision: freezes, the webhook outbox, the plan a decision was made under

``freezes`` holds, per model version and host class, the decision whose file is
shipped whatever is decided later (``dqd freeze``, ``dqd rollback``).
``notifications`` is the webhook outbox, written in the transaction of the
decision (or freeze) it reports and delivered by any daemon. Decisions record
the fingerprint of the model's plan (sidecar, ``[models]`` settings), so a
changed plan makes them stale; older decisions have none and are not stale
for that reason.

Revision ID: 0009_after_decision
Revises: 0008_fleet
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_after_decision"
down_revision: str | None = "0008_fleet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("plan_fingerprint", sa.String(length=32), nullable=True))
    op.create_table(
        "freezes",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("host_class", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["model_versions.sha256"], name=op.f("fk_freezes_sha256_model_versions")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_freezes_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("sha256", "host_class", name=op.f("pk_freezes")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("host_class", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_notifications_decision_id_decisions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_id", "url", name="uq_notifications_event_url"),
    )
    op.create_index(op.f("ix_notifications_event_id"), "notifications", ["event_id"])
    op.create_index("ix_notifications_due", "notifications", ["delivered_at", "failed_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_index(op.f("ix_notifications_event_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("freezes")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("plan_fingerprint")
