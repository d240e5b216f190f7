"""charts keep their data; PNGs are rendered on first use

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_ = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("charts") as batch:
        batch.add_column(sa.Column("spec", JSON_, nullable=True))
        batch.alter_column("png", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM charts WHERE png IS NULL")
    with op.batch_alter_table("charts") as batch:
        batch.alter_column("png", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("spec")
