"""change events (deploys, config changes, tickets) for correlation

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "change_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_events")),
    )
    op.create_index(op.f("ix_change_events_ts"), "change_events", ["ts"], unique=False)
    op.create_table(
        "change_event_labels",
        sa.Column("event_id", Id, nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["change_events.id"], name=op.f("fk_change_event_labels_event_id_change_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", "key", name=op.f("pk_change_event_labels")),
    )
    op.create_index("ix_change_event_labels_key_value", "change_event_labels", ["key", "value"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_change_event_labels_key_value", table_name="change_event_labels")
    op.drop_table("change_event_labels")
    op.drop_index(op.f("ix_change_events_ts"), table_name="change_events")
    op.drop_table("change_events")
