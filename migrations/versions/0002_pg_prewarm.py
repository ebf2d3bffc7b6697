"""pg_prewarm, so the service loads each model's HNSW index into memory at start

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 17:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Part of PostgreSQL's contrib: present in the embedded server and the pgvector image.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS pg_prewarm")
