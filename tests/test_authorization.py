"""Who may do what, on Slack, Teams and the playground: view another person's balance,
approve, deny, cancel, admin commands, and per-person lines in `/tokens team`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from bot.server import build_app
from bot.store.tables import SandboxRequest
from tests.helpers.server import serving
from tests.helpers.surfaces import PlaygroundSurface, SlackSurface, Surface, TeamsSurface

TOMAS, PRIYA, AISHA = "tomas.novak@acme.example", "priya.raman@acme.example", \
    "aisha.bello@acme.example"
DANA, MARCUS = "dana.okafor@acme.example", "marcus.webb@acme.example"


@pytest.fixture
async def playground_surface(make_runtime) -> AsyncIterator[Surface]:  # type: ignore[no-untyped-def]
    rt = await make_runtime()
    async with serving(build_app(rt, playground=True, background=False)) as base, \
            aiohttp.ClientSession() as http:
        yield PlaygroundSurface(rt, http, base)


@pytest.fixture
async def teams_surface(make_runtime) -> AsyncIterator[Surface]:  # type: ignore[no-untyped-def]
    from tests.helpers.teams import teams_harness

    async with teams_harness(make_runtime) as harness:
        yield TeamsSurface(harness)


@pytest.fixture(params=["slack", "teams", "playground"])
def surface(request, backend: str) -> Surface:  # type: ignore[no-untyped-def]
    if request.param == "slack":
        return SlackSurface(request.getfixturevalue("slack_bot"))
    return request.getfixturevalue(f"{request.param}_surface")  # type: ignore[no-any-return]


async def status(surface: Surface) -> str:
    async with surface.rt.db.reader() as s:
        return str(await s.scalar(select(SandboxRequest.status)))


@pytest.mark.parametrize(("who", "allowed"), [(DANA, True), (PRIYA, False), (TOMAS, False)])
async def test_viewing_another_persons_balance(surface: Surface, who: str, allowed: bool) -> None:
    said = await surface.command(who, f"admin balance {AISHA}")
    assert ("Aisha Bello's AI budget" in said) is allowed, said
    if not allowed:
        assert "for the admins" in said


@pytest.mark.parametrize(("who", "allowed"), [(DANA, True), (MARCUS, False), (AISHA, False)])
async def test_admin_commands(surface: Surface, who: str, allowed: bool) -> None:
    said = await surface.command(who, "admin")
    assert ("Undelivered messages" in said) is allowed, said


@pytest.mark.parametrize(("who", "label", "outcome", "message"), [
    (PRIYA, "Approve", "approved", "Approved"),
    (PRIYA, "Deny", "pending", "[form opened]"),  # the designated approver is asked why
    (AISHA, "Approve", "pending", "isn't yours to decide"),
    (AISHA, "Deny", "pending", "isn't yours to decide"),
    (DANA, "Approve", "pending", "isn't yours to decide"),  # admins are not approvers
    (TOMAS, "Approve", "pending", "can't decide your own request"),
])
async def test_deciding(surface: Surface, who: str, label: str, outcome: str,
                        message: str) -> None:
    await surface.command(TOMAS, "sandbox 120 Build an agent that triages our bug reports")
    said = await surface.click(who, PRIYA, f"sandbox:1:card:{await _id(surface, PRIYA)}", label)
    assert message in said, said
    assert await status(surface) == outcome


@pytest.mark.parametrize(("who", "outcome", "message"), [
    (TOMAS, "cancelled", "Cancelled"),
    (PRIYA, "pending", "Only the person who asked can cancel"),
    (AISHA, "pending", "Only the person who asked can cancel"),
])
async def test_cancelling(surface: Surface, who: str, outcome: str, message: str) -> None:
    await surface.command(TOMAS, "sandbox 120 Build an agent that triages our bug reports")
    said = await surface.click(who, TOMAS, "sandbox:1:confirm", "Cancel request")
    assert message in said, said
    assert await status(surface) == outcome


@pytest.mark.parametrize(("who", "text", "sees_names", "refused"), [
    (TOMAS, "team", False, False),  # aggregates only
    (PRIYA, "team", True, False),  # her direct reports
    (DANA, "team", True, False),  # admins see members
    (TOMAS, "team support", False, True),  # another team: admins only
    (DANA, "team support", True, False),
])
async def test_team_view(surface: Surface, who: str, text: str, sees_names: bool,
                         refused: bool) -> None:
    said = await surface.command(who, text)
    assert ("other teams' are for admins" in said) is refused, said
    if not refused:
        names = "Grace Kim" in said or "Chloé Dubois" in said
        assert names is sees_names, said


async def _id(surface: Surface, email: str) -> int:
    from tests.helpers.surfaces import person_id

    return await person_id(surface.rt, email)




async def test_a_manager_sees_reports_in_other_teams_and_only_their_own(surface: Surface) -> None:
    # Jordan (platform) manages Dana and Priya (platform), Marcus (support), Sofia (growth).
    said = await surface.command("jordan.blake@acme.example", "team support")
    assert "Marcus Webb" in said and "Chloé Dubois" not in said
    said = await surface.command("jordan.blake@acme.example", "team")
    assert "Priya Raman" in said and "Marcus Webb" not in said and "Tomás Novák" not in said
    said = await surface.command(TOMAS, "team growth")
    assert "other teams' are for admins" in said


async def test_a_small_teams_mix_is_hidden_from_its_members(surface: Surface) -> None:
    from datetime import date

    from tests.helpers.crafted import record, write

    rt = surface.rt
    await write(rt, [record(rt, e, date(2026, 11, 3), cost="50.00", category=c) for e, c in
                     (("ben.carter@acme.example", "chat"), ("hana.sato@acme.example", "agentic"))])
    said = await surface.command("ben.carter@acme.example", "team")
    assert "fewer than 5" in said and "Agentic share" not in said
    said = await surface.command("sofia.alvarez@acme.example", "team")  # their manager
    assert "Agentic share" in said and "Hana Sato" in said


async def test_a_small_teams_total_is_hidden_from_its_members(surface: Surface) -> None:
    """Two active people: each could subtract their own spend from the total and know the
    other's. Members see no total; their manager and admins keep theirs (issue #22)."""
    from datetime import date

    from tests.helpers.crafted import record, write

    rt = surface.rt
    await write(rt, [record(rt, "ben.carter@acme.example", date(2026, 11, 3), cost="50.25"),
                     record(rt, "hana.sato@acme.example", date(2026, 11, 4), cost="71.50")])
    said = await surface.command("ben.carter@acme.example", "team")
    assert "$121.75" not in said and "$71.50" not in said and "fewer than 5" in said, said
    assert "Team budget" in said
    for who, text in (("sofia.alvarez@acme.example", "team"), (DANA, "team growth")):
        assert "$121.75" in await surface.command(who, text)
