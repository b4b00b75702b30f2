"""ledger: what crash recovery needs to charge a pending hold at its input estimate

A budgeted hold's pending row carries the request's input-token estimate, its cost at the
target's prices, and what its usage row names (requested model, dialect, streamed), so a
process that dies with the request in flight leaves enough for recovery to confirm the hold at
the input estimate instead of $0 (docs/accounting.md, "Exactly once, and after a crash").

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("input_tokens_estimate", sa.Integer()),
    ("amount_estimate", sa.Float()),
    ("requested_model", sa.String(200)),
    ("dialect", sa.String(16)),
    ("streamed", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
