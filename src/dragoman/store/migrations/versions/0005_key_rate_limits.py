"""keys.rpm, keys.tpm, keys.max_concurrency: a virtual key's own rate limits (docs/limits.md)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ("rpm", "tpm", "max_concurrency")


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
