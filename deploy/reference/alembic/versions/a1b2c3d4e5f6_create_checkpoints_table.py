"""create checkpoints table

Revision ID: a1b2c3d4e5f6
Revises: 6bfcfd0a377f
Create Date: 2024-12-24 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a1b2c3d4e5f6"
down_revision: Union[str, None] = "6bfcfd0a377f"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "operation_checkpoints",
        sa.Column("operation_id", sa.String(255),
                  sa.ForeignKey("operations.operation_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("checkpoint_type", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("artifacts_path", sa.String(500)),
        sa.Column("state_size_bytes", sa.Integer()),
        sa.Column("artifacts_size_bytes", sa.BigInteger()),
    )
    op.create_index("ix_checkpoints_created_at", "operation_checkpoints", ["created_at"])
    op.create_index("ix_checkpoints_type", "operation_checkpoints", ["checkpoint_type"])


def downgrade() -> None:
    op.drop_table("operation_checkpoints")
