"""Webhooks: gallery scope, description, secret rotation, disabling; events carry their
gallery; deliveries keep their last attempt and are found by (status, next_attempt_at).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhooks", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("webhooks", sa.Column("gallery_ids", sa.ARRAY(sa.UUID()), nullable=True))
    op.add_column(
        "webhooks", sa.Column("previous_secret_encrypted", sa.LargeBinary(), nullable=True)
    )
    op.add_column(
        "webhooks",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("webhooks", sa.Column("disabled_reason", sa.Text(), nullable=True))
    op.add_column(
        "webhooks",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column("events", sa.Column("gallery_id", sa.UUID(), nullable=True))
    op.add_column(
        "webhook_deliveries",
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("webhook_deliveries", sa.Column("last_latency_ms", sa.Float(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("last_response", sa.Text(), nullable=True))
    op.create_index(
        "ix_webhook_deliveries_status_next",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status_next", table_name="webhook_deliveries")
    for column in ("last_response", "last_latency_ms", "last_attempt_at"):
        op.drop_column("webhook_deliveries", column)
    op.drop_column("events", "gallery_id")
    for column in (
        "updated_at",
        "disabled_reason",
        "previous_secret_expires_at",
        "previous_secret_encrypted",
        "gallery_ids",
        "description",
    ):
        op.drop_column("webhooks", column)
