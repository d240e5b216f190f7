"""Load app.yaml: parse with line positions, validate, cross-check references.

Every problem is reported as ``file:line: key.path: message`` so an admin can fix it
without reading a traceback.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.models import GATEWAY_DEPRECATED, AppConfig, PersonConfig

log = logging.getLogger("tokencoach.config")

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """app.yaml (or a file it points to) is invalid; ``issues`` says where and why."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def config_path() -> Path:
    return Path(os.environ.get("TOKENCOACH_CONFIG", "app.yaml"))


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Lines:
    """Finds the line of a key path in a composed YAML node tree."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def line(self, loc: Loc) -> int | None:
        node = self.root
        if node is None:
            return None
        found = node.start_mark.line + 1
        for part in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if str(key.value) == str(part):
                        # An unknown key is best reported at the key itself.
                        child = value if part != loc[-1] else key
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
            if child is None:
                break
            node = child
            found = node.start_mark.line + 1
        return found


class _Loader(yaml.SafeLoader):
    """SafeLoader, except that a date-like value that is not a real date (``2026-13-45``)
    stays a string: the field it is given to then names the problem with its key and line,
    instead of the YAML library raising from deep inside construction."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _read_yaml(path: Path) -> tuple[Any, _Lines]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), None, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigIssue(str(path), line, "", f"not valid YAML: {problem}")]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), 1, "", "the top level must be a mapping")])
    return data, _Lines(node)


_CSV_COLUMNS = ("email", "name", "team", "manager", "timezone", "slack_id", "teams_id")


def _read_people_csv(path: Path) -> tuple[list[PersonConfig], list[ConfigIssue]]:
    people: list[PersonConfig] = []
    issues: list[ConfigIssue] = []
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        return [], [ConfigIssue(str(path), None, "", f"cannot read people CSV: {exc}")]
    with handle:
        reader = csv.DictReader(handle)
        missing = {"email", "name"} - set(reader.fieldnames or [])
        if missing:
            return [], [
                ConfigIssue(str(path), 1, "", f"missing columns: {', '.join(sorted(missing))}")
            ]
        for row in reader:
            values = {k: (row.get(k) or "").strip() or None for k in _CSV_COLUMNS}
            try:
                people.append(PersonConfig(**{k: v for k, v in values.items() if v is not None}))
            except ValidationError as exc:
                for err in exc.errors():
                    issues.append(
                        ConfigIssue(str(path), reader.line_num, format_loc(err["loc"]), err["msg"])
                    )
    return people, issues


def _cross_check(cfg: AppConfig, people_locs: list[Loc]) -> Iterable[tuple[Loc, str]]:
    """References between sections: managers, teams, admins, approvers, categories."""
    teams = {t.key for t in cfg.directory.teams}
    emails: dict[str, int] = {}
    for i, team in enumerate(cfg.directory.teams):
        if sum(1 for t in cfg.directory.teams if t.key == team.key) > 1:
            yield ("directory", "teams", i, "key"), f"duplicate team key {team.key!r}"
    for i, person in enumerate(cfg.directory.people):
        if person.email in emails:
            yield (*people_locs[i], "email"), f"duplicate person {person.email!r}"
        emails[person.email] = i
    for i, person in enumerate(cfg.directory.people):
        if person.team and person.team not in teams:
            yield (*people_locs[i], "team"), f"unknown team {person.team!r}"
        if person.manager and person.manager not in emails:
            yield (
                (*people_locs[i], "manager"),
                f"unknown manager {person.manager!r} (not in the directory)",
            )
        if person.manager == person.email:
            yield (*people_locs[i], "manager"), "a person cannot be their own manager"
    # A manager chain must end somewhere: cycles would stall approval routing.
    managers = {p.email: p.manager for p in cfg.directory.people}
    for i, person in enumerate(cfg.directory.people):
        seen, cur = {person.email}, person.manager
        while cur and cur in managers:
            if cur in seen:
                yield (*people_locs[i], "manager"), "manager chain loops back to this person"
                break
            seen.add(cur)
            cur = managers[cur]
    for i, admin in enumerate(cfg.admins):
        if admin not in emails:
            yield ("admins", i), f"unknown person {admin!r} (not in the directory)"
    for key in ("second_approver", "fallback_approver"):
        who = getattr(cfg.sandbox, key)
        if who and who not in emails:
            yield ("sandbox", key), f"unknown person {who!r} (not in the directory)"
    for team_key in cfg.policy.team_caps:
        if team_key not in teams:
            yield ("policy", "team_caps", team_key), f"unknown team {team_key!r}"
    for email in cfg.policy.person_caps:
        if email not in emails:
            yield ("policy", "person_caps", email), f"unknown person {email!r}"
    names = set(cfg.categories.names)
    for i, rule in enumerate(cfg.categories.rules):
        if rule.category not in names:
            yield ("categories", "rules", i, "category"), f"unknown category {rule.category!r}"
    for i, tut in enumerate(cfg.tutorials):
        for cat in tut.helps_with:
            if cat not in names:
                yield ("tutorials", i, "helps_with"), f"unknown category {cat!r}"
        if sum(1 for t in cfg.tutorials if t.id == tut.id) > 1:
            yield ("tutorials", i, "id"), f"duplicate tutorial id {tut.id!r}"
    for cat in cfg.digests.routine_categories:
        if cat not in names:
            yield ("digests", "routine_categories"), f"unknown category {cat!r}"
    for name, source in cfg.sources.providers():
        for kind, mapping in source.mappings.model_dump().items():
            for ident, target in mapping.items():
                target = str(target).strip().lower()
                if target.startswith("team:"):
                    if target[5:] not in teams:
                        yield (
                            ("sources", name, "mappings", kind, ident),
                            f"unknown team {target[5:]!r}",
                        )
                elif target not in emails:
                    yield (
                        ("sources", name, "mappings", kind, ident),
                        f"unknown person {target!r} "
                        "(use an email from the directory or team:<key>)",
                    )


def _old_gateway_conflict(data: dict[str, Any], lines: _Lines, file: str) -> None:
    """Both the deprecated sandbox.gateway and enforcement.litellm: say where, up front."""
    sandbox, enforcement = data.get("sandbox"), data.get("enforcement")
    if not (isinstance(sandbox, dict) and "gateway" in sandbox and isinstance(enforcement, dict)):
        return
    new = enforcement.get("litellm")
    if isinstance(new, dict) and new.get("enabled"):
        loc: Loc = ("sandbox", "gateway")
        raise ConfigError([ConfigIssue(
            file, lines.line(loc), format_loc(loc),
            "deprecated, and enforcement.litellm is set too: keep only enforcement.litellm")])


def load_config(path: Path | str | None = None) -> AppConfig:
    """Read and validate app.yaml; raise ConfigError naming every problem's key and line."""
    path = Path(path) if path else config_path()
    data, lines = _read_yaml(path)
    file = str(path)
    _old_gateway_conflict(data, lines, file)
    try:
        cfg = AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see the README's config reference)"
            problems.append(ConfigIssue(file, lines.line(loc), format_loc(loc), msg))
        raise ConfigError(problems) from None

    base_dir = path.parent.resolve()
    people = list(cfg.directory.people)
    people_locs: list[Loc] = [("directory", "people", i) for i in range(len(people))]
    issues: list[ConfigIssue] = []
    if cfg.directory.people_csv:
        csv_path = cfg.directory.people_csv
        csv_path = csv_path if csv_path.is_absolute() else base_dir / csv_path
        from_csv, csv_issues = _read_people_csv(csv_path)
        issues.extend(csv_issues)
        people.extend(from_csv)
        people_locs.extend(
            ("directory", "people_csv", f"row {i + 2}") for i in range(len(from_csv))
        )
        cfg = cfg.model_copy(
            update={"directory": cfg.directory.model_copy(update={"people": people})}
        )
    cfg = cfg.model_copy(update={"base_dir": base_dir})
    for loc, msg in _cross_check(cfg, people_locs):
        line = lines.line(loc) if "people_csv" not in loc else None
        issues.append(ConfigIssue(file, line, format_loc(loc), msg))
    if issues:
        raise ConfigError(issues)
    sandbox = data.get("sandbox")
    if isinstance(sandbox, dict) and "gateway" in sandbox:
        note = str(ConfigIssue(file, lines.line(("sandbox", "gateway")), "", GATEWAY_DEPRECATED))
        cfg.deprecations.append(note)
        log.warning(note)
    return cfg
