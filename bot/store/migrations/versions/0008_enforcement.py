"""enforcement: vendors' limits as read, tokencoach's overrides, and a durable write queue

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-24

``enforced_limits`` holds each member's limit as a vendor enforces it (Claude Enterprise
spend limits, a LiteLLM proxy's max_budget); ``vendor_increase_requests`` the members'
native requests for more; ``vendor_overrides`` the per-user overrides tokencoach writes
for grants with the state to restore; ``vendor_ops`` the queue of writes to vendors.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_ = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enforced_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("vendor_user_id", sa.String(length=255), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=True),
        sa.Column("spent_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("inherited_from", sa.String(length=64), nullable=True),
        sa.Column("source_detail", sa.String(length=255), nullable=True),
        sa.Column("spend_limit_id", sa.String(length=128), nullable=True),
        sa.Column("as_of", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enforced_limits")),
        sa.UniqueConstraint("vendor", "vendor_user_id", "period",
                            name="uq_enforced_limits_member"),
    )
    op.create_index("ix_enforced_limits_person_id", "enforced_limits", ["person_id"])

    op.create_table(
        "vendor_increase_requests",
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("vendor_user_id", sa.String(length=255), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("period", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_amount_micros", sa.BigInteger(), nullable=True),
        sa.Column("current_spent_micros", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("resolved_by", sa.String(length=320), nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("as_of", TS, nullable=False),
        sa.PrimaryKeyConstraint("vendor", "request_id", name=op.f("pk_vendor_increase_requests")),
    )
    op.create_index("ix_vendor_increase_requests_person_id", "vendor_increase_requests",
                    ["person_id"])
    op.create_index("ix_vendor_increase_requests_status", "vendor_increase_requests", ["status"])

    op.create_table(
        "vendor_overrides",
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("vendor_user_id", sa.String(length=255), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("baseline_kind", sa.String(length=16), nullable=False),
        sa.Column("baseline_amount_micros", sa.BigInteger(), nullable=True),
        sa.Column("baseline_spend_limit_id", sa.String(length=128), nullable=True),
        sa.Column("target_micros", sa.BigInteger(), nullable=True),
        sa.Column("spend_limit_id", sa.String(length=128), nullable=True),
        sa.Column("captured_at", TS, nullable=False),
        sa.Column("written_at", TS, nullable=True),
        sa.Column("restored_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("vendor", "vendor_user_id", "period",
                                name=op.f("pk_vendor_overrides")),
    )
    op.create_index("ix_vendor_overrides_person_id", "vendor_overrides", ["person_id"])

    op.create_table(
        "vendor_ops",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("op_key", sa.String(length=255), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("payload", JSON_, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", JSON_, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_ops")),
        sa.UniqueConstraint("op_key", name=op.f("uq_vendor_ops_op_key")),
    )
    op.create_index("ix_vendor_ops_status_next", "vendor_ops", ["status", "next_attempt_at"])
    op.create_index("ix_vendor_ops_person_id", "vendor_ops", ["person_id"])


def downgrade() -> None:
    op.drop_table("vendor_ops")
    op.drop_table("vendor_overrides")
    op.drop_table("vendor_increase_requests")
    op.drop_table("enforced_limits")
