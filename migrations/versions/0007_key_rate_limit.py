"""API keys carry their own rate limit (requests a minute; NULL: the service default).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
    op.create_check_constraint(
        "ck_api_keys_rate_limit_nonnegative", "api_keys", "rate_limit_per_minute >= 0"
    )


def downgrade() -> None:
    op.drop_constraint("ck_api_keys_rate_limit_nonnegative", "api_keys", type_="check")
    op.drop_column("api_keys", "rate_limit_per_minute")
