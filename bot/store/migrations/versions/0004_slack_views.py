"""slack_views: a Slack modal's state, kept server-side under a key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

A modal's private_metadata is capped at 3,000 characters by Slack; the state it needs
on submission (the form's value, the message it was opened from) now lives here and the
view carries only the key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_ = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_views",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("state", JSON_, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_slack_views_created_at", "slack_views", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_views_created_at", table_name="slack_views")
    op.drop_table("slack_views")
