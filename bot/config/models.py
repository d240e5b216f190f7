"""The shape of app.yaml, validated by pydantic. Every section has working defaults."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from bot.config.types import (
    ClockTime,
    Cron,
    Duration,
    Email,
    Factor,
    Money,
    PricePerMTok,
    Slug,
    TimeZoneName,
)

DEFAULT_CATEGORIES = [
    "agentic",
    "coding",
    "analysis",
    "writing",
    "summarization",
    "chat",
    "unknown",
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OrgConfig(Section):
    name: str = "My company"
    timezone: TimeZoneName = "UTC"
    currency: Literal["USD"] = Field(
        "USD", description="Providers bill in USD; amounts are shown and stored in USD."
    )


class ChatIds(Section):
    slack: str | None = None
    teams: str | None = None


class TeamConfig(Section):
    key: Slug
    name: str
    timezone: TimeZoneName | None = None
    channel: ChatIds = ChatIds()
    digest_cron: Cron | None = None
    budget_usd: Money | None = None


class PersonConfig(Section):
    email: Email
    name: str
    team: Slug | None = None
    manager: Email | None = None
    timezone: TimeZoneName | None = None
    slack_id: str | None = None
    teams_id: str | None = Field(None, description="Azure AD object id")
    out_of_office: bool = False


class DirectoryConfig(Section):
    teams: list[TeamConfig] = []
    people: list[PersonConfig] = []
    people_csv: Path | None = Field(
        None,
        description="CSV with columns email,name,team,manager,timezone,slack_id,teams_id; "
        "relative to app.yaml. Merged with inline people.",
    )


class PolicyConfig(Section):
    default_cap_usd: Money = Decimal(1500)
    team_caps: dict[Slug, Money] = {}
    person_caps: dict[Email, Money] = {}


class SandboxConfig(Section):
    enabled: bool = True
    pool_usd: Money = Decimal(20000)
    per_request_max_usd: Money = Decimal(500)
    second_approver_threshold_usd: Money = Decimal(1000)
    second_approver: Email | None = None
    fallback_approver: Email | None = None
    default_duration_days: int = Field(30, ge=1, le=365)
    max_duration_days: int = Field(90, ge=1, le=365)
    min_purpose_words: int = Field(3, ge=1, le=50)
    one_open_request: bool = True
    reminder_after: Duration = timedelta(hours=24)
    escalate_after: Duration = timedelta(hours=48)
    expire_after: Duration = timedelta(days=7)
    outcome_prompt_before: Duration = timedelta(days=2)

    @model_validator(mode="after")
    def _ordering(self) -> SandboxConfig:
        if self.default_duration_days > self.max_duration_days:
            raise ValueError("default_duration_days must not exceed max_duration_days")
        if not self.reminder_after < self.escalate_after < self.expire_after:
            raise ValueError("expected reminder_after < escalate_after < expire_after")
        return self


class SourceMappings(Section):
    """Provider identities to people (email) or teams ("team:<key>")."""

    users: dict[str, str] = {}
    api_keys: dict[str, str] = {}
    projects: dict[str, str] = {}
    workspaces: dict[str, str] = {}
    teams: dict[str, str] = {}


class SourceBase(Section):
    enabled: bool = True
    base_url: str
    key_env: str
    repull_window: Duration = timedelta(hours=48)
    backfill_days: int = Field(30, ge=1, le=400)
    schedule: Cron = "20 * * * *"
    timeout_seconds: float = Field(30, gt=0, le=600)
    max_pages: int = Field(10_000, ge=1)
    mappings: SourceMappings = SourceMappings()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


class OpenAISource(SourceBase):
    base_url: str = "https://api.openai.com"
    key_env: str = "OPENAI_ADMIN_KEY"
    bucket_width: Literal["1h", "1d"] = "1h"
    fetch_key_owners: bool = True
    reconcile_costs: bool = True


class AnthropicSource(SourceBase):
    base_url: str = "https://api.anthropic.com"
    key_env: str = "ANTHROPIC_ADMIN_KEY"
    api: Literal["analytics", "legacy"] = Field(
        "analytics", description="analytics: the Usage and Cost Analytics API (per-user); "
        "legacy: the Messages usage report and cost report")
    bucket_width: Literal["1h", "1d"] = "1h"
    claude_code: bool = True
    reconcile_costs: bool = True


class LiteLLMSource(SourceBase):
    base_url: str = "http://127.0.0.1:4000"
    key_env: str = "LITELLM_MASTER_KEY"
    mode: Literal["spend_logs", "daily_activity"] = "spend_logs"
    spend_logs_endpoint: Literal["auto", "v2", "legacy"] = Field(
        "auto", description="auto: the paginated /spend/logs/v2, or the legacy /spend/logs "
        "on a proxy that answers 404 for it")
    fetch_user_emails: bool = True  # /user/list: internal user id -> email


class GitHubCopilotSource(SourceBase):
    base_url: str = "https://api.github.com"
    key_env: str = "GITHUB_COPILOT_TOKEN"
    schedule: Cron = "40 */6 * * *"
    org: str = Field(description="The GitHub organization whose Copilot usage is billed")
    usage_report: Literal["ai_credit", "premium_request"] = "ai_credit"
    cost: Literal["net", "gross"] = Field(
        "net", description="net: what is billed after included allowances (netAmount); "
        "gross: the usage at list price (grossAmount)")
    api_version: str = "2022-11-28"


class CursorSource(SourceBase):
    base_url: str = "https://api.cursor.com"
    key_env: str = "CURSOR_ADMIN_KEY"


class WebhookSource(Section):
    enabled: bool = True
    token_env: str = "TOKENCOACH_INGEST_TOKEN"  # noqa: S105 (the variable's name, not a secret)
    max_body_mb: int = Field(64, ge=1, le=1024)


PROVIDER_SOURCES = ("openai", "anthropic", "litellm", "github_copilot", "cursor")


class SourcesConfig(Section):
    openai: OpenAISource | None = None
    anthropic: AnthropicSource | None = None
    litellm: LiteLLMSource | None = None
    github_copilot: GitHubCopilotSource | None = None
    cursor: CursorSource | None = None
    webhook: WebhookSource = WebhookSource()

    def providers(self) -> list[tuple[str, SourceBase]]:
        """The configured provider sources (enabled or not), in PROVIDER_SOURCES order."""
        return [(n, c) for n in PROVIDER_SOURCES if (c := getattr(self, n)) is not None]


class LongContextRates(Section):
    """Rates above the provider's long-context threshold (Anthropic: over 200k input
    tokens); a rate left out is the standard one."""

    input: PricePerMTok | None = None
    output: PricePerMTok | None = None
    cache_read: PricePerMTok | None = None
    cache_write: PricePerMTok | None = None
    cache_write_1h: PricePerMTok | None = None


class PriceEntry(Section):
    """USD per 1M tokens unless named otherwise. Every dimension a provider bills apart
    has its own rate; a rate left out falls back as documented in the README."""

    model: str = Field(description="Exact model name, or a prefix ending in '*'")
    provider: str | None = None
    effective_from: date = date(2024, 1, 1)
    input: PricePerMTok
    output: PricePerMTok
    cache_read: PricePerMTok | None = None
    cache_write: PricePerMTok | None = None  # 5-minute cache writes (OpenAI: cache writes)
    cache_write_1h: PricePerMTok | None = None
    audio_input: PricePerMTok | None = None
    audio_cache_read: PricePerMTok | None = None
    audio_output: PricePerMTok | None = None
    image_input: PricePerMTok | None = None
    image_cache_read: PricePerMTok | None = None
    image_output: PricePerMTok | None = None
    web_search_per_1k: PricePerMTok | None = Field(None, description="USD per 1,000 searches")
    tiers: dict[str, Factor] = Field(
        {}, description="Service tier -> multiplier on every token rate (batch, flex, "
        "priority); a tier not listed is priced at the standard rates and reported.")
    long_context: LongContextRates | None = None

    @field_validator("tiers")
    @classmethod
    def _tier_names(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {k.strip().lower(): v for k, v in value.items()}


class PricingConfig(Section):
    use_defaults: bool = True
    models: list[PriceEntry] = []
    routing: dict[str, str] = Field(
        {},
        description="Expensive model (or prefix*) -> the cheaper model of the same vendor "
        "that routine work could use; used for routing-savings estimates.",
    )
    implausible_cost_factor: int = Field(
        100,
        ge=2,
        description="A record whose given cost is more than this many times the price "
        "table's is kept but reported (ingest summary, admins).",
    )


class RuleMatch(Section):
    source: str | None = None
    provider: str | None = None
    project: str | None = None
    api_key: str | None = None
    workspace: str | None = None
    tag: str | None = None
    model: str | None = Field(None, description="Exact model, or a prefix ending in '*'")
    user: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> RuleMatch:
        if not any(self.model_dump().values()):
            raise ValueError("a rule must match on at least one field")
        return self


class CategoryRule(Section):
    name: str | None = None
    match: RuleMatch
    category: str


class HeuristicsConfig(Section):
    summarization_ratio: Decimal = Field(Decimal(8), gt=0)
    summarization_min_input: int = Field(2000, ge=0)
    writing_ratio: Decimal = Field(Decimal("1.5"), gt=0)
    chat_max_input_per_request: int = Field(1500, ge=0)
    chat_max_output_per_request: int = Field(800, ge=0)
    agent_products: list[str] = ["claude_code", "codex", "cursor_agent", "devin",
                                 "copilot_coding_agent"]
    # A product whose use is one kind of work however its tokens look (an IDE assistant
    # is coding even when its context is large).
    product_categories: dict[str, str] = {"copilot": "coding", "cursor": "coding"}
    coding_models: list[str] = ["*codex*", "*coder*", "codestral*"]


class CategoriesConfig(Section):
    names: list[str] = DEFAULT_CATEGORIES
    low_value: list[str] = ["summarization", "chat"]
    agentic: list[str] = ["agentic"]
    rules: list[CategoryRule] = []
    heuristics: HeuristicsConfig = HeuristicsConfig()

    @model_validator(mode="after")
    def _known(self) -> CategoriesConfig:
        names = set(self.names)
        if "unknown" not in names:
            raise ValueError("categories.names must include 'unknown'")
        for key in ("low_value", "agentic"):
            missing = [c for c in getattr(self, key) if c not in names]
            if missing:
                raise ValueError(f"{key} names unknown categories: {', '.join(missing)}")
        unknown = sorted(set(self.heuristics.product_categories.values()) - names)
        if unknown:
            raise ValueError("heuristics.product_categories names unknown categories: "
                             + ", ".join(unknown))
        return self


class Tutorial(Section):
    id: Slug
    title: str
    url: str
    summary: str = ""
    level: Literal["beginner", "intermediate", "advanced"] = "beginner"
    helps_with: list[str] = []
    minutes: int | None = Field(None, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("tutorial url must start with https:// or http://")
        return value


class AlertsConfig(Section):
    enabled: bool = True
    thresholds: list[int] = [50, 80, 100]
    forecast: bool = True

    @field_validator("thresholds")
    @classmethod
    def _pct(cls, value: list[int]) -> list[int]:
        if any(not 1 <= v <= 1000 for v in value):
            raise ValueError("thresholds are percentages between 1 and 1000")
        return sorted(set(value))


class NudgesConfig(Section):
    enabled: bool = True
    low_value_threshold: Decimal = Field(Decimal("0.70"), gt=0, le=1)
    min_spend_usd: Money = Decimal(20)
    window_days: int = Field(28, ge=7, le=120)
    cooldown_days: int = Field(14, ge=1, le=365)
    holdout_share: Decimal = Field(Decimal("0.10"), ge=0, lt=1)
    working_hours_start: ClockTime = time(9, 0)
    working_hours_end: ClockTime = time(18, 0)
    working_days: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    alerts: AlertsConfig = AlertsConfig()


class DigestsConfig(Section):
    enabled: bool = True
    routine_categories: list[str] = ["summarization", "chat"]
    small_team_min: int = Field(5, ge=1)
    chart_weeks: int = Field(8, ge=2, le=52)
    manager_digests: bool = True
    admin_digest: bool = True
    catch_up_days: int = Field(7, ge=0, le=31)


class SchedulesConfig(Section):
    digest: Cron = "0 9 * * mon"
    nudge_sweep: Cron = "0 10 * * tue"
    threshold_alerts: Cron = "*/30 * * * *"
    approvals: Cron = "*/10 * * * *"
    retention: Cron = "30 3 * * *"
    tick_seconds: int = Field(30, ge=1, le=3600)


class RetentionConfig(Section):
    raw_usage_days: int = Field(400, ge=35)
    processed_events_days: int = Field(7, ge=1)
    sent_outbox_days: int = Field(90, ge=1)


class SlackConfig(Section):
    allowed_team_ids: list[str] = Field(
        [],
        description="Slack workspace (T...) or Enterprise Grid organization (E...) ids whose "
        "members may be matched to people by email; empty: only the bot's own workspace.",
    )

    @field_validator("allowed_team_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for ident in value:
            if not re.fullmatch(r"[TE][A-Z0-9]{2,20}", ident):
                raise ValueError(
                    f"{ident!r} is not a Slack workspace id (T...) or organization id (E...)"
                )
        return value


class ServerConfig(Section):
    public_url: str | None = Field(
        None, description="Base URL where Teams can fetch chart images (signed links)."
    )
    commands_per_minute: int = Field(30, ge=1)
    request_timeout_seconds: float = Field(10, gt=0)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_http_url)]


class ClaudeEnterpriseEnforcement(Section):
    """Claude Enterprise spend limits (Admin API): read every member's effective limit and
    spend; write per-user overrides for grants; route native increase requests."""

    enabled: bool = False
    base_url: BaseUrl = "https://api.anthropic.com"
    key_env: str = "CLAUDE_ENTERPRISE_ADMIN_KEY"
    schedule: Cron = "*/15 * * * *"
    route_increase_requests: bool = True
    write_grants: bool = True
    dry_run: bool = False


class LiteLLMEnforcement(Section):
    """A LiteLLM proxy's per-user ``max_budget``: raised by grants, or every person's cap."""

    enabled: bool = False
    base_url: BaseUrl = "http://127.0.0.1:4000"
    key_env: str = "LITELLM_MASTER_KEY"
    push_caps: bool = False
    schedule: Cron = "5 * * * *"
    dry_run: bool = False


class EnforcementConfig(Section):
    claude_enterprise: ClaudeEnterpriseEnforcement = ClaudeEnterpriseEnforcement()
    litellm: LiteLLMEnforcement = LiteLLMEnforcement()


GATEWAY_DEPRECATED = (
    "sandbox.gateway is deprecated: it is read as enforcement.litellm "
    "(move it there; enforcement.litellm.push_caps can also push every person's cap)"
)


class AppConfig(Section):
    org: OrgConfig = OrgConfig()
    admins: list[Email] = []
    directory: DirectoryConfig = DirectoryConfig()
    policy: PolicyConfig = PolicyConfig()
    sandbox: SandboxConfig = SandboxConfig()
    sources: SourcesConfig = SourcesConfig()
    pricing: PricingConfig = PricingConfig()
    categories: CategoriesConfig = CategoriesConfig()
    tutorials: list[Tutorial] = []
    nudges: NudgesConfig = NudgesConfig()
    digests: DigestsConfig = DigestsConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    retention: RetentionConfig = RetentionConfig()
    slack: SlackConfig = SlackConfig()
    server: ServerConfig = ServerConfig()
    enforcement: EnforcementConfig = EnforcementConfig()

    # Old keys that were read under their new names (the loader adds file:line).
    _deprecations: list[str] = PrivateAttr(default_factory=list)

    # Filled by the loader, not from YAML: where the file lives, for relative paths.
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _old_gateway_key(cls, data: Any) -> Any:
        """``sandbox.gateway`` (before enforcement existed) becomes enforcement.litellm."""
        if not isinstance(data, dict) or not isinstance(data.get("sandbox"), dict):
            return data
        if "gateway" not in data["sandbox"]:
            return data
        sandbox = dict(data["sandbox"])
        old = sandbox.pop("gateway")
        enforcement = dict(data.get("enforcement") or {})
        new = enforcement.get("litellm") or {}
        if isinstance(new, dict) and new.get("enabled") and isinstance(old, dict):
            raise ValueError(
                "sandbox.gateway and enforcement.litellm are both set: keep only "
                "enforcement.litellm (sandbox.gateway is deprecated)"
            )
        if isinstance(old, dict):
            enforcement["litellm"] = {**(new if isinstance(new, dict) else {}), **old}
        else:
            enforcement["litellm"] = old  # let validation name what is wrong with it
        return {**data, "sandbox": sandbox, "enforcement": enforcement}

    @property
    def deprecations(self) -> list[str]:
        return self._deprecations

    def team(self, key: str) -> TeamConfig | None:
        return next((t for t in self.directory.teams if t.key == key), None)

    def cap_for(self, email: str, team: str | None) -> Decimal:
        if email in self.policy.person_caps:
            return self.policy.person_caps[email]
        if team and team in self.policy.team_caps:
            return self.policy.team_caps[team]
        return self.policy.default_cap_usd
