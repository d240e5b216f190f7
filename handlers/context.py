"""What a handler knows about the request: who is asking, from where. Platform-neutral."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.directory import PersonView
from bot.runtime import Runtime


@dataclass(frozen=True)
class Actor:
    """The person behind a command or click, as the adapter resolved them."""

    person: PersonView | None
    platform: str  # slack | teams | playground | cli
    platform_user_id: str
    in_channel: bool = False  # spoke in a shared channel rather than a DM
    # Set by an adapter that has not looked the person up yet (``person`` is None until
    # the router does): the balance card finds them in its own statement instead.
    lookup: Callable[[], Awaitable[PersonView | None]] | None = None

    @property
    def label(self) -> str:
        """How the audit log names this actor (works for people not in the directory)."""
        who = self.person.email if self.person else "unknown"
        return f"{self.platform}:{self.platform_user_id} ({who})"


@dataclass(frozen=True)
class Ctx:
    rt: Runtime
    actor: Actor

    @property
    def person(self) -> PersonView:
        """The asking person; handlers only run once the router checked there is one."""
        assert self.actor.person is not None
        return self.actor.person
