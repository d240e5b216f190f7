"""The Agents Playground personas (teams/agents-playground*.yml), driven through the real
Teams endpoint: each persona chats in its own personal conversation, so Tomás's private
"approved" notice lands in his chat and never in the one Priya is viewing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.teams import TeamsUser
from tests.helpers.teams import TeamsHarness, buttons, card_text, teams_harness

REPO = Path(__file__).resolve().parents[1]
PERSONAS = {"tomas.novak@acme.example": REPO / "teams/agents-playground.yml",
            "priya.raman@acme.example": REPO / "teams/agents-playground-priya.yml"}


@dataclass(frozen=True)
class Persona(TeamsUser):
    """A Teams user with the ids an Agents Playground file gives its currentUser."""

    user_id: str = ""
    aad_id: str = ""
    chat: str = ""

    @property
    def id(self) -> str:
        return self.user_id

    @property
    def aad(self) -> str:
        return self.aad_id


def persona(path: Path) -> Persona:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    me = data["currentUser"]
    return Persona(me["email"], me["name"], me["id"], me["aadObjectId"],
                   data["personalChat"]["id"])


@pytest.fixture
async def teams(make_runtime: Callable[..., Any]) -> AsyncIterator[TeamsHarness]:
    async with teams_harness(make_runtime) as harness:
        yield harness


def test_each_persona_file_is_someone_in_the_demo_org_with_a_chat_of_their_own(
        base_config: Any) -> None:
    people = {p.email for p in base_config.directory.people}
    found = {email: persona(path) for email, path in PERSONAS.items()}
    assert {p.email for p in found.values()} == set(PERSONAS) <= people
    assert len({p.chat for p in found.values()}) == len(found)  # one conversation each
    # The same person has the same ids in every file (Teams' ids don't depend on who looks).
    ids: dict[str, tuple[str, str]] = {}
    for path in PERSONAS.values():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for user in [data["currentUser"], *data["users"]]:
            assert ids.setdefault(user["email"], (user["id"], user["aadObjectId"])) == (
                user["id"], user["aadObjectId"]), user["email"]


async def test_private_notices_go_to_each_personas_own_chat(teams: TeamsHarness) -> None:
    h = teams
    tomas, priya = (persona(path) for path in PERSONAS.values())
    h.fake.add(tomas, priya)

    def in_own_chat(activity: dict[str, Any], who: Persona) -> dict[str, Any]:
        activity["conversation"]["id"] = who.chat
        return activity

    def said(who: Persona, text: str) -> dict[str, Any]:
        return in_own_chat(h.client.message(who, text, h.fake), who)

    await h.client.post(in_own_chat(h.client.install_personal(priya, h.fake), priya))
    answer = await h.client.post(said(tomas, "tokens sandbox 300 Build an agent that triages "
                                             "bug reports"))
    assert answer.status == 201
    await h.deliver()
    card = next(m for m in h.fake.in_conversation(priya.chat)
                if "Sandbox budget request #1" in card_text(m.card))
    click = in_own_chat(h.client.execute(priya, buttons(card.card)["Approve"],
                                         h.client.personal(priya, h.fake), card.id), priya)
    assert (await h.client.post(click)).status == 200
    await h.deliver()

    def notices(chat: str) -> list[str]:
        return [card_text(m.card) for m in h.fake.in_conversation(chat)]

    mine = notices(tomas.chat)
    assert any(t.startswith("Sandbox request #1 approved") for t in mine)
    assert any(t.startswith("Your sandbox request #1") for t in mine)
    theirs = notices(priya.chat)
    assert any(t.startswith("Sandbox budget request #1") for t in theirs)  # her card
    assert not any(t.startswith(("Sandbox request #1 approved", "Your sandbox request"))
                   for t in theirs)
