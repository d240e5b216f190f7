"""app.yaml validation: every problem names its key path and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from tests.helpers.cli import REPO, tokencoach

GOOD = """\
org: {name: Test, timezone: Europe/Berlin}
admins: [a@x.example]
directory:
  teams:
    - {key: core, name: Core}
  people:
    - {email: a@x.example, name: Ann, team: core}
    - {email: b@x.example, name: Bob, team: core, manager: a@x.example}
"""


def write(tmp_path: Path, text: str, name: str = "app.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return [str(i) for i in err.value.issues]


def test_repo_app_yaml_is_valid() -> None:
    cfg = load_config(REPO / "app.yaml")
    assert len(cfg.directory.people) == 30
    assert {t.key for t in cfg.directory.teams} == {"platform", "support", "growth"}
    assert cfg.policy.default_cap_usd == Decimal(1500)
    assert cfg.cap_for("kenji.watanabe@acme.example", "platform") == Decimal(2500)
    assert cfg.cap_for("mei.chen@acme.example", "support") == Decimal(800)


def test_defaults_without_a_file_section(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.policy.default_cap_usd == Decimal(1500)
    assert cfg.nudges.cooldown_days == 14
    assert cfg.sandbox.expire_after.days == 7


@pytest.mark.parametrize(
    ("extra", "line", "path", "message"),
    [
        ("policy:\n  default_cap_usd: lots\n", 10, "policy.default_cap_usd", "amount in dollars"),
        ("policy:\n  defualt_cap_usd: 100\n", 10, "policy.defualt_cap_usd", "unknown key"),
        ("nudges:\n  cooldown_days: [1]\n", 10, "nudges.cooldown_days", "integer"),
        ("schedules:\n  digest: 'every monday'\n", 10, "schedules.digest", "cron"),
        ("sandbox:\n  reminder_after: soon\n", 10, "sandbox.reminder_after", "duration"),
        ("org:\n  timezone: Mars/Olympus\n", 10, "org.timezone", "time zone"),
    ],
)
def test_wrong_values_name_key_and_line(tmp_path: Path, extra: str, line: int, path: str,
                                        message: str) -> None:
    text = GOOD.replace("org: {name: Test, timezone: Europe/Berlin}\n", "") if extra.startswith(
        "org") else GOOD
    if extra.startswith("org"):
        line -= 1
    found = issues_of(write(tmp_path, text + extra))
    assert len(found) == 1, found
    assert f"app.yaml:{line}: {path}:" in found[0]
    assert message in found[0]


def test_missing_manager_and_team_are_named(tmp_path: Path) -> None:
    text = GOOD + "    - {email: c@x.example, name: Cy, team: nope, manager: ghost@x.example}\n"
    found = issues_of(write(tmp_path, text))
    assert any("app.yaml:9: directory.people[2].team: unknown team 'nope'" in f for f in found)
    assert any("app.yaml:9: directory.people[2].manager: unknown manager 'ghost@x.example'" in f
               for f in found)


def test_manager_cycle_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("{email: a@x.example, name: Ann, team: core}",
                        "{email: a@x.example, name: Ann, team: core, manager: b@x.example}")
    found = issues_of(write(tmp_path, text))
    assert any("loops back" in f for f in found)


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, GOOD + "policy: {default_cap_usd: 5\n"))
    assert len(found) == 1 and "not valid YAML" in found[0] and "app.yaml:" in found[0]


def test_people_csv_rows_are_validated(tmp_path: Path) -> None:
    write(tmp_path, "email,name,team,manager\nc@x.example,Cy,core,a@x.example\n"
                    "not-an-email,Dee,core,\ne@x.example,Eve,core,zed@x.example\n", "people.csv")
    found = issues_of(write(tmp_path, GOOD + "  people_csv: people.csv\n"))
    assert any("people.csv:3" in f and "not an email" in f for f in found)
    assert any("people_csv.row" in f and "unknown manager 'zed@x.example'" in f for f in found)


def test_people_csv_merges(tmp_path: Path) -> None:
    write(tmp_path, "email,name,team,manager,timezone\nc@x.example,Cy,core,a@x.example,UTC\n",
          "people.csv")
    cfg = load_config(write(tmp_path, GOOD + "  people_csv: people.csv\n"))
    assert [p.email for p in cfg.directory.people][-1] == "c@x.example"


def test_check_command_exits_nonzero_naming_key_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD + "sandbox:\n  pool_usd: -5\n  colour: blue\n")
    result = tokencoach("check", "--offline", config=bad,
                        database_url=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2
    assert "app.yaml:10: sandbox.pool_usd:" in result.stderr
    assert "app.yaml:11: sandbox.colour: unknown key" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
