"""Tracked links: a button that both records an action and opens a URL.

Slack sends the click to the bot and opens the URL itself. Adaptive Cards cannot do both
in one click, so for Teams such a button becomes a signed link to ``/go``, which records
the action through the normal handlers and then redirects. Only actions listed here may
ride on a link, and only to http(s) URLs; links expire.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from bot.directory import person_by_id
from bot.reply import Actions, Button, Reply
from bot.runtime import Runtime
from bot.signing import mac

log = logging.getLogger("tokencoach.links")
TRACKED_ACTIONS = frozenset({"tips.open"})
TTL = timedelta(days=60)


def _payload(person: str, action: str, value: str, url: str, exp: str) -> str:
    return "\x1f".join((person, action, value, url, exp))


def tracked(rt: Runtime, reply: Reply, person_id: int | None) -> Reply:
    """``reply`` with its tracked-link buttons pointing at ``/go`` (when reachable)."""
    base = (rt.config.server.public_url or "").rstrip("/")
    if not base or person_id is None:
        return reply
    exp = str(int((rt.now() + TTL).timestamp()))
    changed = False
    blocks = []
    for block in reply.blocks:
        if isinstance(block, Actions):
            buttons = []
            for b in block.buttons:
                if b.url and b.action in TRACKED_ACTIONS:
                    query = {
                        "p": str(person_id),
                        "a": b.action,
                        "v": b.value,
                        "u": b.url,
                        "exp": exp,
                    }
                    query["sig"] = mac(
                        rt, _payload(*(query[k] for k in ("p", "a", "v", "u", "exp")))
                    )
                    b = Button(label=b.label, url=f"{base}/go?{urlencode(query)}", style=b.style)
                    changed = True
                buttons.append(b)
            block = Actions(buttons=buttons)
        blocks.append(block)
    return reply.model_copy(update={"blocks": blocks}) if changed else reply


def mount(app: web.Application, rt: Runtime) -> None:
    async def go(request: web.Request) -> web.Response:
        q = request.query
        fields = [q.get(k, "") for k in ("p", "a", "v", "u", "exp")]
        person, action, value, url, exp = fields
        good = hmac.compare_digest(mac(rt, _payload(*fields)), q.get("sig", ""))
        if not good or not exp.isdigit() or int(exp) < rt.now().timestamp():
            raise web.HTTPForbidden(text="This link has expired or is not valid.")
        if (
            action not in TRACKED_ACTIONS
            or urlsplit(url).scheme not in ("http", "https")
            or not person.isdigit()
        ):
            raise web.HTTPBadRequest(text="Not a trackable link.")
        from handlers import handle_action
        from handlers.context import Actor, Ctx

        async with rt.db.reader() as s:
            who = await person_by_id(s, int(person))
        try:
            await handle_action(
                Ctx(rt, Actor(person=who, platform="link", platform_user_id=person)), action, value
            )
        except Exception:  # recording the click must never stand between a person and a link
            log.exception("tracked link action failed")
        raise web.HTTPFound(url)

    app.router.add_get("/go", go)
