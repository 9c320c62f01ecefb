"""notifications outbox; incidents remember their escalation

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("escalation_policy", sa.String(128), nullable=True))
        batch.add_column(sa.Column("escalation_step", sa.Integer(), nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("escalation_round", sa.Integer(), nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("escalation_next_at", sa.Float(), nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("integration", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("incident_id", Id, nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
    )
    op.create_index(op.f("ix_notifications_incident_id"), "notifications", ["incident_id"])
    op.create_index("ix_notifications_pending", "notifications", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_pending", table_name="notifications")
    op.drop_index(op.f("ix_notifications_incident_id"), table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("incidents") as batch:
        for name in ("escalation_next_at", "escalation_round", "escalation_step", "escalation_policy"):
            batch.drop_column(name)
