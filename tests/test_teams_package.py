"""The Teams app package (manifest, icons, `tokencoach teams-package`) and `check`."""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.checks import run_checks
from bot.config.env import Env
from bot.teams import auth
from bot.teams.check import probe
from handlers.texts import COMMANDS
from tests.fakes.teams import TENANT
from tests.helpers.cli import REPO, tokencoach

APP_ID = "9d1a6a4e-3c55-4b0e-8a51-2f1b7f0e4c11"
TEAMS = REPO / "teams"
SCHEMA = REPO / "tests" / "schemas" / "teams-manifest-1.22.json"


def png_header(data: bytes) -> tuple[int, int, int]:
    """(width, height, color type) from a PNG's IHDR."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, _depth, color = struct.unpack(">IIBB", data[16:26])
    return width, height, color


def manifest_errors(manifest: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(manifest)]


def test_manifest_template_mirrors_the_commands_and_validates_once_filled() -> None:
    template = json.loads((TEAMS / "manifest.json").read_text(encoding="utf-8"))
    assert template["manifestVersion"] == "1.22"
    bot = template["bots"][0]
    assert bot["botId"] == template["id"] == "${{MICROSOFT_APP_ID}}"
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    expected = [{"title": cmd.lstrip("/"), "description": what} for cmd, what in COMMANDS]
    assert [c["commands"] for c in bot["commandLists"]] == [expected, expected]
    filled = json.loads(json.dumps(template).replace("${{MICROSOFT_APP_ID}}", APP_ID))
    assert manifest_errors(filled) == []


def test_icons_are_the_sizes_teams_requires() -> None:
    assert png_header((TEAMS / "color.png").read_bytes())[:2] == (192, 192)
    width, height, color = png_header((TEAMS / "outline.png").read_bytes())
    assert (width, height) == (32, 32) and color == 6  # RGBA: a transparent background


def test_teams_package_command_builds_the_zip(tmp_path: Path) -> None:
    out = tmp_path / "pkg" / "tokencoach.zip"
    done = tokencoach("teams-package", "--out", str(out),
                      env={"MICROSOFT_APP_ID": APP_ID, "DATABASE_URL": "sqlite:///unused.db"})
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("color.png") == (TEAMS / "color.png").read_bytes()
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID
    assert "${{" not in json.dumps(manifest)
    assert manifest_errors(manifest) == []


def test_teams_package_needs_an_app_id(tmp_path: Path) -> None:
    done = tokencoach("teams-package", "--out", str(tmp_path / "x.zip"))
    assert done.returncode == 2 and "MICROSOFT_APP_ID" in done.stderr
    bad = tokencoach("teams-package", "--out", str(tmp_path / "x.zip"),
                     env={"MICROSOFT_APP_ID": "not-a-guid"})
    assert bad.returncode == 2 and "GUID" in bad.stderr
    assert not (tmp_path / "x.zip").exists()


@pytest.fixture
def token_source() -> Iterator[list[str]]:
    """Stand in for Microsoft Entra ID: hand out a token and record the scopes asked."""
    scopes: list[str] = []

    def issue(scope: str) -> str:
        scopes.append(scope)
        return "test-token"

    auth.set_token_source(issue)
    yield scopes
    auth.set_token_source(None)


async def test_check_acquires_a_token_with_the_configured_credentials(
        make_runtime: Any, token_source: list[str]) -> None:
    rt = await make_runtime(sync=False, microsoft_app_id=APP_ID,
                            microsoft_app_password="s3cret-value",
                            microsoft_app_tenant_id=TENANT)
    said = await probe(rt)
    assert said == f"token acquired for app {APP_ID} (SingleTenant, tenant {TENANT})"
    assert token_source == ["https://api.botframework.com"]
    results = {r.name: r for r in await run_checks(rt)}
    assert results["teams"].status == "ok"


async def test_check_names_what_is_missing(make_runtime: Any) -> None:
    rt = await make_runtime(sync=False, microsoft_app_id=APP_ID,
                            microsoft_app_password="s3cret-value")
    results = {r.name: r for r in await run_checks(rt)}
    assert results["teams"].status == "fail"
    assert "MICROSOFT_APP_TENANT_ID" in results["teams"].detail
    emulator = await make_runtime(sync=False, teams_emulator=True)
    assert await probe(emulator) == "emulator mode: no credentials to check"


async def test_outgoing_calls_carry_the_apps_token(make_runtime: Any, token_source: list[str],
                                                   db_url: str) -> None:
    """References captured in emulator mode, then delivered by a process with an app id:
    the connector sees the Bot Framework token on every call."""
    from sqlalchemy import select

    from bot.outbox import drain, enqueue
    from bot.platforms import attach_deliverers
    from bot.reply import simple
    from bot.store.tables import Person
    from tests.helpers.teams import teams_harness

    async with teams_harness(make_runtime) as h:
        await h.client.post(h.client.install_personal(h.user("priya.raman@acme.example"),
                                                      h.fake))
        rt = await make_runtime(env=Env(database_url=db_url, microsoft_app_id=APP_ID,
                                        microsoft_app_password="s3cret-value",
                                        microsoft_app_tenant_id=TENANT), sync=False)
        attach_deliverers(rt)
        async with rt.db.session() as s:
            priya = await s.scalar(select(Person.id).where(
                Person.email == "priya.raman@acme.example"))
            await enqueue(s, rt, kind="nudge", target_type="person", target_id=priya,
                          reply=simple("Hello from the worker"), key="test:auth:1")
        assert (await drain(rt)).sent == 1
        sent = h.fake.calls_to("send")[-1]
        assert sent.authorization == "Bearer test-token"
        # In emulator mode nothing carried a token.
        assert all(c.authorization is None for c in h.fake.calls[:-1])
