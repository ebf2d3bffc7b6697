"""GIN index on liveness session frame digests, for the cross-session replay check

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 19:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_liveness_sessions_digests ON liveness_sessions "
        "USING gin ((state -> 'digests') jsonb_path_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_liveness_sessions_digests")
