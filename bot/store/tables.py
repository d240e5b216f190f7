"""The store's tables. Money columns are integer micro-dollars (``*_micros``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.store.types import BigId, Json, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: Json,
        Any: Json,
    }


# --- directory -------------------------------------------------------------------------


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    slack_channel_id: Mapped[str | None] = mapped_column(String(64))
    teams_channel_id: Mapped[str | None] = mapped_column(String(255))
    digest_cron: Mapped[str | None] = mapped_column(String(64))
    budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    cap_micros: Mapped[int | None] = mapped_column(BigInteger)
    origin: Mapped[str] = mapped_column(String(16), default="config")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    cap_micros: Mapped[int | None] = mapped_column(BigInteger)
    out_of_office: Mapped[bool] = mapped_column(Boolean, default=False)
    slack_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    teams_aad_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    tips_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tips_changed_at: Mapped[datetime | None]
    origin: Mapped[str] = mapped_column(String(16), default="config")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Identity(Base):
    """A provider-side identity (user id, API key, project, workspace) -> person or team."""

    __tablename__ = "identities"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    origin: Mapped[str] = mapped_column(String(16), default="config")


class DirectoryVersion(Base):
    """One row whose ``version`` database triggers bump on any change to people's email or
    team, or to identities (migration 0003): ingest reloads its owner maps when it moves."""

    __tablename__ = "directory_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


# --- usage -----------------------------------------------------------------------------


class UsageRecord(Base):
    """One priced, attributed, categorised usage bucket or event. Never holds prompt text."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_person_day", "person_id", "day"),
        Index("ix_usage_records_day", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    record_key: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    day: Mapped[date] = mapped_column(Date)
    person_id: Mapped[int | None] = mapped_column(Integer)
    team_id: Mapped[int | None] = mapped_column(Integer)
    identity: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    cost_basis: Mapped[str] = mapped_column(String(12))
    category: Mapped[str] = mapped_column(String(32))
    category_rule: Mapped[str] = mapped_column(String(96))
    project: Mapped[str | None] = mapped_column(String(128))
    ingested_at: Mapped[datetime]


class UsageDaily(Base):
    """Per-day rollup of usage_records in the org time zone, maintained by exact deltas.

    ``person_id``/``team_id`` use 0 for "none" so the key can be a primary key on both
    databases. ``notool_*`` counts only records without tool calls (routing savings).
    """

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index("ix_usage_daily_person_day", "person_id", "day"),
        Index("ix_usage_daily_team_day", "team_id", "day"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    notool_cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    notool_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    notool_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    notool_cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    notool_cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class SourceState(Base):
    """Per-source checkpoint and freshness."""

    __tablename__ = "source_state"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    checkpoint: Mapped[datetime | None]
    data_as_of: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    records_total: Mapped[int] = mapped_column(BigInteger, default=0)


class ProviderCost(Base):
    """What a provider billed (cost APIs), kept to reconcile against priced usage."""

    __tablename__ = "provider_costs"

    cost_key: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date, index=True)
    scope: Mapped[str | None] = mapped_column(String(128))
    line_item: Mapped[str | None] = mapped_column(String(255))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    ingested_at: Mapped[datetime]


# --- sandbox budgets -------------------------------------------------------------------


class SandboxRequest(Base):
    __tablename__ = "sandbox_requests"
    __table_args__ = (
        Index("ix_sandbox_requests_status_approver", "status", "current_approver_id"),
        Index("ix_sandbox_requests_person_status", "person_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    duration_days: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(Text)
    expected_outcome: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    stage: Mapped[int] = mapped_column(Integer, default=1)
    stages: Mapped[list[Any]] = mapped_column(Json)
    current_approver_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    policy: Mapped[dict[str, Any]] = mapped_column(Json)
    period: Mapped[str] = mapped_column(String(7))
    created_at: Mapped[datetime]
    stage_started_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    deny_reason: Mapped[str | None] = mapped_column(Text)
    origin_platform: Mapped[str] = mapped_column(String(16), default="cli")


class SandboxGrant(Base):
    __tablename__ = "sandbox_grants"
    __table_args__ = (Index("ix_sandbox_grants_person_status", "person_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("sandbox_requests.id"), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[str] = mapped_column(String(7))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")
    outcome: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None]
    outcome_asked_at: Mapped[datetime | None]
    gateway_synced_at: Mapped[datetime | None]
    gateway_restored_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # Written by a run "as if it were" another time (`--at`): listed apart from real rows.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)


# --- nudges and alerts -----------------------------------------------------------------


class Nudge(Base):
    """A personal tip decision from a sweep: sent, deferred, or held out (control group)."""

    __tablename__ = "nudges"
    __table_args__ = (UniqueConstraint("person_id", "period", name="uq_nudges_person_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    period: Mapped[str] = mapped_column(String(32))
    cohort: Mapped[str] = mapped_column(String(16))  # nudged | holdout
    tutorial_id: Mapped[str | None] = mapped_column(String(63))
    category: Mapped[str] = mapped_column(String(32))
    low_value_share_bp: Mapped[int] = mapped_column(Integer)  # basis points
    agentic_share_bp: Mapped[int] = mapped_column(Integer)
    spend_micros: Mapped[int] = mapped_column(BigInteger)
    variant: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    dismissed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class TipEvent(Base):
    __tablename__ = "tip_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    nudge_id: Mapped[int | None] = mapped_column(ForeignKey("nudges.id"))
    tutorial_id: Mapped[str | None] = mapped_column(String(63))
    event: Mapped[str] = mapped_column(String(16))  # sent|opened|not_now|opt_out|opt_in|completed
    at: Mapped[datetime] = mapped_column(index=True)


class ThresholdAlert(Base):
    """One row per crossing per period: the primary key is what prevents alert storms."""

    __tablename__ = "threshold_alerts"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    basis: Mapped[str] = mapped_column(String(16), primary_key=True)  # actual | forecast
    threshold: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent_at: Mapped[datetime]


# --- plumbing --------------------------------------------------------------------------


class JobClaim(Base):
    """One row per (job, period): inserting it is how a replica earns the right to run."""

    __tablename__ = "job_claims"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    owner: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime]
    lease_until: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # Claimed by a run "as if it were" another time (`--at`): not a real run.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)


class JobFirstSeen(Base):
    """When the scheduler first considered a job: periods due before that are history a
    fresh install never missed, so they are not caught up."""

    __tablename__ = "job_first_seen"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[datetime]


class OutboxMessage(Base):
    """A proactive message, written with the change that causes it and sent with retries."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))  # person | team
    target_id: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    update_of_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class ConversationRef(Base):
    """Where a platform can reach a person or a team channel proactively (Teams)."""

    __tablename__ = "conversation_refs"
    __table_args__ = (
        UniqueConstraint("platform", "key", name="uq_conversation_refs_platform_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    reference: Mapped[dict[str, Any]] = mapped_column(Json)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    retired_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Chart(Base):
    """A chart's data (``spec``); the PNG is rendered on first use and cached in ``png``."""

    __tablename__ = "charts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any] | None] = mapped_column(Json)
    png: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(index=True)


class ProcessedEvent(Base):
    """Deliveries already handled (Slack event ids, Teams activity ids): retries are no-ops."""

    __tablename__ = "processed_events"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)


class SlackView(Base):
    """What a Slack modal carries between opening and submission (the form's value, the
    message it was opened from). The view's ``private_metadata`` holds only this key:
    Slack caps that field at 3,000 characters."""

    __tablename__ = "slack_views"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(index=True)


class PlaygroundMessage(Base):
    __tablename__ = "playground_messages"
    __table_args__ = (Index("ix_playground_messages_conv_id", "conversation", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation: Mapped[str] = mapped_column(String(64))  # dm:<person_id> | team:<team_id>
    author: Mapped[str] = mapped_column(String(64))  # bot | person:<id>
    visible_to: Mapped[int | None] = mapped_column(Integer)  # ephemeral: only this person
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- enforcement: limits that vendors enforce, and tokencoach's writes to them ---------


class EnforcedLimit(Base):
    """A member's limit as a vendor enforces it, as last read (one row per period).

    ``amount_micros`` is None when no limit applies (Claude Enterprise: unlimited);
    ``inherited_from`` is where the vendor resolved it from (``user``, ``seat_tier``,
    ``rbac_group``, ``organization``, ...), ``source_detail`` names that scope.
    """

    __tablename__ = "enforced_limits"
    __table_args__ = (
        UniqueConstraint("vendor", "vendor_user_id", "period", name="uq_enforced_limits_member"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor: Mapped[str] = mapped_column(String(32))
    vendor_user_id: Mapped[str] = mapped_column(String(255))
    period: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    amount_micros: Mapped[int | None] = mapped_column(BigInteger)
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    inherited_from: Mapped[str | None] = mapped_column(String(64))
    source_detail: Mapped[str | None] = mapped_column(String(255))
    spend_limit_id: Mapped[str | None] = mapped_column(String(128))
    as_of: Mapped[datetime]


class VendorIncreaseRequest(Base):
    """A member's native request for a higher limit (Claude Enterprise), as last read.

    The API carries no requested amount and no justification: the approver supplies the
    new limit. ``current_*`` is the requester's live spend summary while pending.
    """

    __tablename__ = "vendor_increase_requests"

    vendor: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    vendor_user_id: Mapped[str | None] = mapped_column(String(255))
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    period: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    current_amount_micros: Mapped[int | None] = mapped_column(BigInteger)
    current_spent_micros: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(320))
    first_seen_at: Mapped[datetime]
    as_of: Mapped[datetime]


class VendorOverride(Base):
    """A per-user override tokencoach put in place for grants, and what was there before.

    ``baseline_kind`` is ``override`` (the member had their own limit: restore it) or
    ``inherited`` (they had none: delete ours). Written before the vendor call, so a
    crash between the call and its record never loses the previous state.
    """

    __tablename__ = "vendor_overrides"

    vendor: Mapped[str] = mapped_column(String(32), primary_key=True)
    vendor_user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(16))  # active | restored
    baseline_kind: Mapped[str] = mapped_column(String(16))
    baseline_amount_micros: Mapped[int | None] = mapped_column(BigInteger)
    baseline_spend_limit_id: Mapped[str | None] = mapped_column(String(128))
    target_micros: Mapped[int | None] = mapped_column(BigInteger)
    spend_limit_id: Mapped[str | None] = mapped_column(String(128))
    captured_at: Mapped[datetime]
    written_at: Mapped[datetime | None]
    restored_at: Mapped[datetime | None]


class VendorOp(Base):
    """A durable write to a vendor's limits, queued in the transaction that causes it.

    Like the outbox: claimed by one sender, retried with backoff, idempotent by
    ``op_key``; a write that keeps failing is reported to admins, never dropped.
    """

    __tablename__ = "vendor_ops"
    __table_args__ = (Index("ix_vendor_ops_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    op_key: Mapped[str] = mapped_column(String(255), unique=True)
    vendor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    actor: Mapped[str] = mapped_column(String(128))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
