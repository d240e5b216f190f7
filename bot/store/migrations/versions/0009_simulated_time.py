"""simulated time kept apart, and when the scheduler first saw each job

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

- ``job_first_seen``: the first time the scheduler considered each job. Periods due before
  it are history a fresh install never missed, so they are not caught up (and not posted
  "late"); catch-up is for downtime after the bot has run. Existing installs start from
  their oldest claim, so their catch-up behaviour does not change.
- ``simulated`` on ``audit_log`` and ``job_claims``: rows written by runs "as if it were"
  another time (`--at`), so they are shown apart from real ones and never count as the
  last real run. Rows already dated in the future (earlier as-if runs) are marked so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_first_seen",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_first_seen")),
    )
    op.execute(
        "INSERT INTO job_first_seen (job, first_seen_at) "
        "SELECT job, MIN(claimed_at) FROM job_claims WHERE claimed_at <= CURRENT_TIMESTAMP "
        "GROUP BY job"
    )
    for table in ("audit_log", "job_claims"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false())
            )
    # Rows from the future can only come from earlier "as if" runs: mark them simulated, so
    # they neither mix with real entries nor count as the last real run.
    op.execute("UPDATE job_claims SET simulated = TRUE WHERE claimed_at > CURRENT_TIMESTAMP")
    op.execute("UPDATE audit_log SET simulated = TRUE WHERE at > CURRENT_TIMESTAMP")


def downgrade() -> None:
    for table in ("job_claims", "audit_log"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("simulated")
    op.drop_table("job_first_seen")
