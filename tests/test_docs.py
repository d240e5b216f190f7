"""The README stays true: every config key, CLI command, job and env var is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
from pydantic import BaseModel

from bot.cli import cli
from bot.config.models import AppConfig
from bot.scheduling.registry import all_jobs

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if name == "base_dir":
            continue
        sub = next((c for c in (field.annotation, *getattr(field.annotation, "__args__", ()))
                    if isinstance(c, type) and issubclass(c, BaseModel)), None)
        is_list = getattr(field.annotation, "__origin__", None) is list
        if sub is not None and not is_list:
            keys += leaf_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def documented(key: str) -> bool:
    # A key counts as documented under its own name, or (for repeated sub-sections such as
    # sources.*.mappings, categories.heuristics.*) by its parent plus its last part.
    last = key.rsplit(".", 1)[-1]
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    return (f"`{key}`" in README or f"{key}`" in README
            or (last in README and parent.split(".")[0] in README))


def test_every_config_key_is_in_the_readme() -> None:
    missing = [k for k in leaf_keys(AppConfig) if not documented(k)]
    assert missing == []


def test_every_command_and_job_is_in_the_readme() -> None:
    ctx = click.Context(cli)
    for name, command in cli.commands.items():
        assert f"tokencoach {name}" in README, name
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                assert re.search(rf"{name} {sub}\b", README), f"{name} {sub}"
    for job in all_jobs():
        assert f"`{job}`" in README, job


def test_every_environment_variable_is_in_the_readme() -> None:
    source = (Path(__file__).resolve().parents[1] / "bot" / "config" / "env.py").read_text()
    names = set(re.findall(r'get\("([A-Z_]+)"\)', source)) | {"TOKENCOACH_CONFIG"}
    missing = [n for n in sorted(names) if n not in README]
    assert missing == []


def test_the_quickstart_is_two_commands_and_ci_runs_the_test_one() -> None:
    block = README.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
