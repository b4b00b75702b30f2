"""usage.request_id unique: a batch written twice (a retry after a lost commit acknowledgement,
a spool replayed again) inserts its rows once (docs/accounting.md, "A database outage")

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # rows a retried batch already doubled: keep the first of each request
    op.execute("DELETE FROM usage WHERE id NOT IN (SELECT MIN(id) FROM usage GROUP BY request_id)")
    op.drop_index("ix_usage_request_id", table_name="usage")
    op.create_index("ix_usage_request_id", "usage", ["request_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_usage_request_id", table_name="usage")
    op.create_index("ix_usage_request_id", "usage", ["request_id"])
