"""What a tip and a threshold alert say. Wording varies between sends; it never shames."""

from __future__ import annotations

import hashlib
from datetime import date

from bot.config.models import Tutorial
from bot.money import fmt_usd
from bot.reply import Actions, Block, Button, Context, Header, Reply, Text
from bot.tips import CATEGORY_WORDS, open_button

TIP_TEMPLATES = [
    "Hi {first}! Over the last four weeks, {low}% of your AI spend ({spend}) went to {words}. "
    "That's useful work — and it's exactly the kind an agent can take off your plate. "
    "“{title}” shows how in about {minutes} minutes.",
    "{first}, a quick observation: most of your recent AI use is {words} ({low}% of {spend} "
    "in four weeks). People who hand whole tasks to agents get more out of the same budget; "
    "“{title}” ({minutes} min) is a good first step.",
    "Hi {first} — you've mostly used AI for {words} lately ({low}% of the last four weeks). "
    "Ready for the next step? “{title}” walks through delegating a task end to end "
    "({minutes} min).",
]


def variant_for(person_id: int, period: str) -> int:
    digest = hashlib.blake2b(f"{person_id}:{period}".encode(), digest_size=2).digest()
    return int.from_bytes(digest, "big") % len(TIP_TEMPLATES)


def in_holdout(person_id: int, on: date, share: float) -> bool:
    """Stable per person per quarter, so cohorts don't churn between weekly sweeps."""
    quarter = f"{on.year}Q{(on.month - 1) // 3 + 1}"
    digest = hashlib.blake2b(f"holdout:{person_id}:{quarter}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def tip(
    *,
    first: str,
    category: str,
    low_share: int,
    spend: int,
    tutorial: Tutorial,
    nudge_id: int,
    variant: int,
    sandbox: bool,
) -> Reply:
    words = CATEGORY_WORDS.get(category, category)
    text = TIP_TEMPLATES[variant % len(TIP_TEMPLATES)].format(
        first=first,
        low=low_share,
        spend=fmt_usd(spend, cents=False),
        words=words,
        title=tutorial.title,
        minutes=tutorial.minutes or 20,
    )
    blocks: list[Block] = [Text(text=text)]
    if tutorial.summary:
        blocks.append(Context(text=tutorial.summary))
    blocks.append(
        Actions(
            buttons=[
                open_button(tutorial, value=f"{tutorial.id}|{nudge_id}"),
                Button(label="Not now", action="tips.not_now", value=f"{tutorial.id}|{nudge_id}"),
                Button(label="Stop these tips", action="tips.stop", value=str(nudge_id)),
            ]
        )
    )
    if sandbox:
        blocks.append(
            Context(
                text="Want room to experiment? `/tokens sandbox` asks your "
                "manager for a sandbox budget."
            )
        )
    return Reply(text=f"A tip for your AI work: {tutorial.title}", blocks=blocks)


def alert(
    *,
    basis: str,
    threshold: int,
    spent: int,
    limit: int,
    month: str,
    cap_day: date | None,
    low_share: int,
    low_words: str | None,
    tutorial: Tutorial | None,
    sandbox: bool,
) -> Reply:
    if basis == "forecast":
        head = "You're on pace to reach your AI budget"
        body = (
            f"At your current pace you'll reach your {month} limit of {fmt_usd(limit)} on "
            f"**{cap_day:%b %-d}**"
            if cap_day
            else f"At your current pace you'll pass your {month} limit of {fmt_usd(limit)}"
        )
        body += f" (so far {fmt_usd(spent)})."
    elif threshold >= 100:
        head = "You've reached your AI budget for the month"
        body = f"You've used {fmt_usd(spent)} of your {fmt_usd(limit)} {month} limit."
    else:
        head = f"You've used {threshold}% of your AI budget"
        body = f"{fmt_usd(spent)} of your {fmt_usd(limit)} {month} limit so far."
    blocks: list[Block] = [Header(text=head), Text(text=body)]
    buttons: list[Button] = []
    if low_words and low_share >= 50:
        blocks.append(
            Text(
                text=f"Most of it ({low_share}%) is {low_words}: routing that to a "
                "smaller model, or handing it to an agent, stretches the "
                "budget further."
            )
        )
        if tutorial:
            buttons.append(open_button(tutorial, style="default"))
    if sandbox and (threshold >= 80 or basis == "forecast"):
        blocks.append(
            Text(
                text="Working on an experiment that needs more? Ask for a sandbox "
                "budget — your manager decides, usually the same day."
            )
        )
        buttons.insert(
            0, Button(label="Request sandbox budget", action="sandbox.open_form", style="primary")
        )
    if buttons:
        blocks.append(Actions(buttons=buttons))
    blocks.append(
        Context(
            text="You get each of these at most once a month. `/tokens` shows "
            "your balance any time."
        )
    )
    return Reply(text=head, blocks=blocks)
