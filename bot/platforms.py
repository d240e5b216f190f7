"""Build the delivery platforms (outbox deliverers) this process can reach."""

from __future__ import annotations

from bot.outbox import Deliverer, delivery_platforms
from bot.runtime import Runtime


def build_deliverers(rt: Runtime) -> dict[str, Deliverer]:
    """One deliverer per configured platform; imports stay lazy so each SDK is optional."""
    out: dict[str, Deliverer] = {}
    for name in delivery_platforms(rt):
        if name == "slack":
            from bot.slack.deliver import SlackDeliverer

            out[name] = SlackDeliverer(rt)
        elif name == "teams":
            from bot.teams.deliver import TeamsDeliverer

            out[name] = TeamsDeliverer(rt)
        elif name == "playground":
            from bot.playground.deliver import PlaygroundDeliverer

            out[name] = PlaygroundDeliverer(rt)
    return out


def attach_deliverers(rt: Runtime) -> None:
    if not rt.platforms:
        rt.platforms.update(build_deliverers(rt))
