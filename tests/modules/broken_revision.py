"""An alembic revision that fails halfway (creates a table, then divides by zero): the
migration tests of tests/modules and tests/reliability check that it leaves the database as it was."""

BROKEN_REVISION = '''"""broken on purpose: creates a table, then divides by zero

Revision ID: b0rken000003
Revises: a1b2c3d4e5f6
"""
from alembic import op
import sqlalchemy as sa

revision = "b0rken000003"
down_revision = "a1b2c3d4e5f6"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("ops_broken_probe", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT 1/0")


def downgrade():
    op.drop_table("ops_broken_probe")
'''
