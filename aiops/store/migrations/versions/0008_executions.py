"""remediation: executions, their steps, verification watches, switches

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("runbook", sa.String(128), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("alert_id", Id, nullable=True),
        sa.Column("incident_id", Id, nullable=True),
        sa.Column("series_id", Id, nullable=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("verify_deadline", sa.Float(), nullable=True),
        sa.Column("wake_at", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
    )
    for column in ("runbook", "target", "state"):
        op.create_index(op.f(f"ix_executions_{column}"), "executions", [column])
    op.create_table(
        "execution_steps",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(2048), nullable=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], name=op.f("fk_execution_steps_execution_id_executions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_steps")),
    )
    op.create_index(op.f("ix_execution_steps_execution_id"), "execution_steps", ["execution_id"])
    op.create_table(
        "verification_watches",
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("series_id", Id, nullable=False),
        sa.Column("max_score", sa.Float(), nullable=False),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("normal_since", sa.Float(), nullable=True),
        sa.Column("last_ts", sa.Float(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"],
                                name=op.f("fk_verification_watches_execution_id_executions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id", "purpose", name=op.f("pk_verification_watches")),
    )
    op.create_index(op.f("ix_verification_watches_series_id"), "verification_watches", ["series_id"])
    op.create_table(
        "switches",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_switches")),
    )


def downgrade() -> None:
    op.drop_table("switches")
    op.drop_index(op.f("ix_verification_watches_series_id"), table_name="verification_watches")
    op.drop_table("verification_watches")
    op.drop_index(op.f("ix_execution_steps_execution_id"), table_name="execution_steps")
    op.drop_table("execution_steps")
    for column in ("state", "target", "runbook"):
        op.drop_index(op.f(f"ix_executions_{column}"), table_name="executions")
    op.drop_table("executions")
