"""Command grammar and action dispatch, the one entry point every adapter calls.

Grammar (Slack `/tokens …`; Teams and the playground: the same words):
``/tokens``, ``help``, ``history``, ``sandbox [AMOUNT PURPOSE]``, ``requests``,
``tips [on|off]``, ``team [KEY]``, ``admin …``. Anything else gets a short usage
message. No input, however strange, produces a stack trace: unexpected errors are
logged with the request id and answered with a short apology.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot import metrics
from bot.reply import ActionResult, Form, Reply, simple
from bot.store import UNAVAILABLE
from handlers import admin, balance, sandbox, team, tips
from handlers.context import Ctx
from handlers.texts import not_in_directory, usage_reply

log = logging.getLogger("tokencoach.handlers")

CommandFn = Callable[[Ctx, list[str]], Awaitable[Reply | Form]]
ActionFn = Callable[[Ctx, str, dict[str, str]], Awaitable[ActionResult]]

COMMANDS: dict[str, CommandFn] = {
    "": balance.show_balance,
    "balance": balance.show_balance,
    "help": balance.show_help,
    "history": balance.show_history,
    "sandbox": sandbox.request_command,
    "requests": sandbox.list_requests,
    "tips": tips.tips_command,
    "team": team.show_team,
    "admin": admin.admin_command,
}

ACTIONS: dict[str, ActionFn] = {
    **sandbox.ACTIONS,
    **tips.ACTIONS,
    **balance.ACTIONS,
}

MAX_COMMAND_LENGTH = 2000


async def _looked_up(ctx: Ctx) -> Ctx:
    """The asker, looked up if the adapter left it to us (``Actor.lookup``)."""
    if ctx.actor.person is not None or ctx.actor.lookup is None:
        return ctx
    return Ctx(ctx.rt, replace(ctx.actor, person=await ctx.actor.lookup(), lookup=None))


def _limited(ctx: Ctx, per_minute: int) -> bool:
    actor = ctx.actor
    if ctx.rt.limiter.allow(f"{actor.platform}:{actor.platform_user_id}", per_minute):
        return False
    metrics.RATE_LIMITED.labels(actor.platform).inc()
    return True


_SLOW_DOWN = simple("You're sending commands quickly — give it a few seconds and try again.")
_OOPS = simple(
    "Something went wrong on my side while answering that. It's been logged; "
    "please try again in a moment."
)
UNAVAILABLE_REPLY = simple(
    "I can't reach my database right now, so I can't answer that. Please try again in a minute."
)


def normalize(text: str) -> list[str]:
    """Split a command into words; a leading '/tokens' or 'tokens' is optional."""
    words = text.strip().split()
    if words and words[0].lower().lstrip("/") in ("tokens", "token"):
        words = words[1:]
    return words


async def handle_command(ctx: Ctx, text: str) -> Reply | Form:
    """Answer a command (the text after /tokens). A Form means: open this form."""
    started = time.perf_counter()
    words = normalize(text[:MAX_COMMAND_LENGTH])
    name = words[0].lower() if words else ""
    label = name if name in COMMANDS else "unknown"
    try:
        if _limited(ctx, ctx.rt.config.server.commands_per_minute):
            return _SLOW_DOWN
        fn = COMMANDS.get(name)
        if fn is balance.show_balance and len(words) <= 1 and ctx.actor.person is None:
            card = await balance.own_card(ctx)  # the asker found in the card's statement
            if card is not None:
                return card
        ctx = await _looked_up(ctx)
        if ctx.actor.person is None:
            return await not_in_directory(ctx.rt)
        if fn is None:
            shown = " ".join(words)[:60]
            return usage_reply(f"I don't know `{shown}`. Here is what I can do:")
        return await fn(ctx, words[1:])
    except UNAVAILABLE as exc:
        log.warning("store unavailable", extra={"command": label, "error": repr(exc)})
        return UNAVAILABLE_REPLY
    except Exception:
        log.exception("command failed", extra={"command": label, "actor": ctx.actor.label})
        return _OOPS
    finally:
        metrics.COMMAND_SECONDS.labels(ctx.actor.platform, label).observe(
            time.perf_counter() - started
        )


async def handle_action(
    ctx: Ctx, action: str, value: str = "", form: dict[str, str] | None = None
) -> ActionResult:
    """Answer a click or a form submission. ``action`` may carry a ':n' suffix."""
    started = time.perf_counter()
    base = action.split(":", 1)[0]
    try:
        if _limited(ctx, ctx.rt.config.server.commands_per_minute * 2):
            return ActionResult(reply=_SLOW_DOWN)
        ctx = await _looked_up(ctx)
        if ctx.actor.person is None:
            return ActionResult(reply=await not_in_directory(ctx.rt))
        fn = ACTIONS.get(base)
        if fn is None:
            log.warning("unknown action", extra={"action": base, "actor": ctx.actor.label})
            return ActionResult(reply=simple("That button is no longer active."))
        fields = dict(form or {})
        fields.setdefault("value", value)
        return await fn(ctx, value, fields)
    except UNAVAILABLE as exc:
        log.warning("store unavailable", extra={"action": base, "error": repr(exc)})
        return ActionResult(reply=UNAVAILABLE_REPLY)
    except Exception:
        log.exception("action failed", extra={"action": base, "actor": ctx.actor.label})
        return ActionResult(reply=_OOPS)
    finally:
        label = f"action:{base}" if base in ACTIONS else "action:unknown"  # bounded labels
        metrics.COMMAND_SECONDS.labels(ctx.actor.platform, label).observe(
            time.perf_counter() - started
        )
