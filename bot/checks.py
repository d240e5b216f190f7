"""`tokencoach check`: config, database, and each configured credential, with a verdict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.runtime import Runtime


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str


async def _guard(name: str, probe: Callable[[], Awaitable[str]]) -> CheckResult:
    try:
        return CheckResult(name, "ok", await probe())
    except Exception as exc:  # every failure becomes a line in the report
        return CheckResult(name, "fail", f"{type(exc).__name__}: {str(exc)[:300]}")


async def run_checks(rt: Runtime, *, offline: bool = False) -> list[CheckResult]:
    cfg = rt.config
    out = [
        CheckResult(
            "config",
            "ok",
            f"{len(cfg.directory.people)} people, "
            f"{len(cfg.directory.teams)} teams, "
            f"{len(cfg.tutorials)} tutorials",
        )
    ]

    async def database() -> str:
        await rt.db.ping()
        await rt.db.ensure_migrated()
        return f"{rt.db.dialect}, schema {await rt.db.current_revision()}"

    out.append(await _guard("database", database))

    if rt.env.slack_enabled:
        if offline:
            out.append(CheckResult("slack", "ok", "credentials present (not contacted)"))
        else:
            from bot.slack.client import probe as slack_probe

            out.append(await _guard("slack", lambda: slack_probe(rt)))
    elif rt.env.slack_bot_token or rt.env.slack_signing_secret:
        out.append(
            CheckResult("slack", "fail", "set both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
        )
    else:
        out.append(CheckResult("slack", "warn", "not configured"))

    if rt.env.microsoft_app_id:
        if not rt.env.microsoft_app_password:
            out.append(CheckResult("teams", "fail", "MICROSOFT_APP_PASSWORD is not set"))
        elif offline:
            out.append(CheckResult("teams", "ok", "credentials present (not contacted)"))
        else:
            from bot.teams.check import probe as teams_probe

            out.append(await _guard("teams", lambda: teams_probe(rt)))
    elif rt.env.teams_emulator:
        out.append(CheckResult("teams", "warn", "emulator mode: no authentication"))
    else:
        out.append(CheckResult("teams", "warn", "not configured"))

    if cfg.sources.webhook.enabled:
        if rt.env.secret(cfg.sources.webhook.token_env):
            out.append(CheckResult("webhook", "ok", f"token in {cfg.sources.webhook.token_env}"))
        else:
            out.append(
                CheckResult(
                    "webhook",
                    "warn",
                    f"{cfg.sources.webhook.token_env} is not set: POST /ingest/usage refuses all",
                )
            )
    for name, source in cfg.sources.providers():
        if not source.enabled:
            continue
        if not rt.env.secret(source.key_env):
            out.append(CheckResult(name, "fail", f"{source.key_env} is not set"))
        elif offline:
            out.append(CheckResult(name, "ok", f"key in {source.key_env} (not contacted)"))
        else:
            from bot.usage.pull import probe_source

            async def probe(source: str = name) -> str:
                return await probe_source(rt, source)

            out.append(await _guard(name, probe))
    from bot.enforcement.check import enforcement_checks

    return out + await enforcement_checks(rt, offline=offline)
