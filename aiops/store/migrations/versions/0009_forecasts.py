"""forecasts: the latest forecast of each watched series

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("backtest_error", sa.Float(), nullable=True),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ts", sa.JSON(), nullable=False),
        sa.Column("yhat", sa.JSON(), nullable=False),
        sa.Column("lower", sa.JSON(), nullable=False),
        sa.Column("upper", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("earliest", sa.Float(), nullable=True),
        sa.Column("likely", sa.Float(), nullable=True),
        sa.Column("latest", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("series_id", name=op.f("pk_forecasts")),
    )


def downgrade() -> None:
    op.drop_table("forecasts")
