"""Wording shared by several handlers."""

from __future__ import annotations

from bot.directory import admins
from bot.reply import Block, Context, Header, Reply, Text, simple
from bot.runtime import Runtime

COMMANDS = [
    ("/tokens", "your balance: spent, cap, sandbox grants, forecast, where it goes"),
    ("/tokens history", "the last 6 months, spent against cap"),
    ("/tokens sandbox", "ask for a sandbox budget (a form)"),
    ("/tokens sandbox 300 Build an agent that …", "ask for $300 with a purpose, in one line"),
    ("/tokens requests", "your open requests, and the ones waiting on you"),
    ("/tokens tips", "tutorials that fit how you use AI"),
    ("/tokens tips off | on", "stop or resume personal tips"),
    ("/tokens team", "your team's spend and agentic share (managers see their reports)"),
    ("/tokens admin", "org overview and admin tools (admins only)"),
    ("/tokens help", "this list"),
]


def usage_reply(problem: str | None = None) -> Reply:
    lines = "\n".join(f"**{cmd}**  {what}" for cmd, what in COMMANDS)
    blocks: list[Block] = [Header(text="tokencoach commands")]
    if problem:
        blocks.insert(0, Text(text=problem))
    blocks.append(Text(text=lines))
    blocks.append(
        Context(text="In Teams, send the same words to the bot: `tokens`, `tokens sandbox 300 …`.")
    )
    return Reply(text=problem or "tokencoach commands", blocks=blocks)


async def not_in_directory(rt: Runtime) -> Reply:
    async with rt.db.reader() as s:
        names = [a.name for a in await admins(s)]
    ask = f"an admin ({', '.join(names[:3])})" if names else "your AI platform team"
    return simple(
        "I couldn't find you in the tokencoach directory, so I can't show a balance yet. "
        f"Ask {ask} to add you — they'll need the email address you use at work."
    )
