"""create operations table

Revision ID: 6bfcfd0a377f
Revises:
Create Date: 2025-01-01 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "6bfcfd0a377f"
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("operation_id", sa.String(255), primary_key=True),
        sa.Column("operation_type", sa.String(50), nullable=False),
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("worker_id", sa.String(255)),
        sa.Column("is_backend_local", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("progress_percent", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("progress_message", sa.String(500)),
        sa.Column("metadata", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("result", postgresql.JSONB()),
        sa.Column("error_message", sa.Text()),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("reconciliation_status", sa.String(50)),
    )
    op.create_index("ix_operations_status", "operations", ["status"])
    op.create_index("ix_operations_worker_id", "operations", ["worker_id"])
    op.create_index("ix_operations_operation_type", "operations", ["operation_type"])
    op.create_index("ix_operations_created_at", "operations", ["created_at"])


def downgrade() -> None:
    op.drop_table("operations")
