"""`tokencoach check` for enforcement: each enabled vendor's key, tested with one read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.checks import CheckResult
from bot.enforcement import claude, litellm
from bot.runtime import Runtime


async def _probe(name: str, read: Callable[[], Awaitable[str]]) -> CheckResult:
    try:
        return CheckResult(name, "ok", await read())
    except Exception as exc:  # every failure is a line in the report, not a traceback
        return CheckResult(name, "fail", f"{type(exc).__name__}: {str(exc)[:300]}")


async def _claude(rt: Runtime) -> str:
    async with claude.client(rt) as http:
        page = await http.call("GET", "/v1/organizations/spend_limits/effective",
                               params=[("limit", 1)])
    rows = len(page.get("data") or []) if isinstance(page, dict) else 0
    return (f"spend limits readable ({rows} row on the first page); write:spend_limits "
            "is needed too for grants and decisions (not tested: no write is made)")


async def _litellm(rt: Runtime) -> str:
    async with litellm.client(rt) as http:
        body = await http.call("GET", "/user/list", params=[("page", 1), ("page_size", 1)])
    total = body.get("total") if isinstance(body, dict) else None
    return f"users readable ({total} users)"


async def enforcement_checks(rt: Runtime, *, offline: bool = False) -> list[CheckResult]:
    out = [CheckResult("config", "warn", note) for note in rt.config.deprecations]
    cfg = rt.config.enforcement
    for name, section, read in (("claude_enterprise", cfg.claude_enterprise, _claude),
                                ("litellm_budgets", cfg.litellm, _litellm)):
        if not section.enabled:
            continue
        dry = " (dry run: no writes are made)" if section.dry_run else ""
        if not rt.env.secret(section.key_env):
            out.append(CheckResult(name, "fail", f"{section.key_env} is not set"))
        elif offline:
            out.append(CheckResult(name, "ok", f"key in {section.key_env} (not contacted)"
                                   + dry))
        else:
            result = await _probe(name, lambda read=read: read(rt))  # type: ignore[misc]
            out.append(CheckResult(result.name, result.status, result.detail + dry))
    return out
