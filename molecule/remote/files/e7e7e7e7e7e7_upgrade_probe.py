"""ktrdr.ops remote scenario: a migration that only the upgraded release has

Revision ID: e7e7e7e7e7e7
Revises: a1b2c3d4e5f6
Create Date: 2026-11-22 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "e7e7e7e7e7e7"
down_revision: Union[str, None] = "a1b2c3d4e5f6"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "ktrdr_ops_upgrade_probe",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("note", sa.String(100)),
    )


def downgrade() -> None:
    op.drop_table("ktrdr_ops_upgrade_probe")
