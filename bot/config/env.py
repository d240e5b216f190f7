"""Settings that come from the environment: database, platform credentials, secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///./tokencoach.db"


def normalize_database_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver the store uses."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


@dataclass(frozen=True)
class Env:
    database_url: str = normalize_database_url(DEFAULT_DATABASE_URL)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    microsoft_app_id: str | None = None
    microsoft_app_password: str | None = field(default=None, repr=False)
    microsoft_app_tenant_id: str | None = None
    microsoft_app_type: str = "SingleTenant"
    teams_emulator: bool = False
    ingest_token: str | None = field(default=None, repr=False)
    url_signing_key: str | None = field(default=None, repr=False)
    source: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Env:
        env = dict(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(
            database_url=normalize_database_url(get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_api_url=get("SLACK_API_URL"),
            microsoft_app_id=get("MICROSOFT_APP_ID"),
            microsoft_app_password=get("MICROSOFT_APP_PASSWORD"),
            microsoft_app_tenant_id=get("MICROSOFT_APP_TENANT_ID"),
            microsoft_app_type=get("MICROSOFT_APP_TYPE") or "SingleTenant",
            teams_emulator=(get("TOKENCOACH_TEAMS_EMULATOR") or "") in ("1", "true", "yes"),
            ingest_token=get("TOKENCOACH_INGEST_TOKEN"),
            url_signing_key=get("TOKENCOACH_URL_SIGNING_KEY"),
            source=env,
        )

    def secret(self, name: str) -> str | None:
        """A credential named in app.yaml (e.g. a provider's key_env)."""
        value = self.source.get(name, "").strip()
        return value or None

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    @property
    def teams_enabled(self) -> bool:
        return bool(self.microsoft_app_id) or self.teams_emulator

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def secrets(self) -> list[str]:
        """Every secret value in play, so log filters can redact them."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.microsoft_app_password,
            self.ingest_token,
            self.url_signing_key,
        ]
        values += [v for k, v in self.source.items() if k.endswith(("_KEY", "_TOKEN", "_SECRET"))]
        return [v for v in values if v and len(v) >= 6]
