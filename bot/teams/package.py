"""The Teams app package: ``teams/manifest.json`` with the bot's app id filled in, the
command list taken from the handlers' own list, and the two icons, zipped."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from handlers.texts import COMMANDS

PLACEHOLDER = "${{MICROSOFT_APP_ID}}"
SOURCE = Path(__file__).resolve().parents[2] / "teams"
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class PackageError(ValueError):
    pass


def commands() -> list[dict[str, str]]:
    """The Teams command menu: the same commands as `tokens help`, slash dropped."""
    return [{"title": cmd.lstrip("/"), "description": what} for cmd, what in COMMANDS][:10]


def _fill(node: Any, app_id: str) -> Any:
    if isinstance(node, str):
        return node.replace(PLACEHOLDER, app_id)
    if isinstance(node, list):
        return [_fill(v, app_id) for v in node]
    if isinstance(node, dict):
        return {k: _fill(v, app_id) for k, v in node.items()}
    return node


def manifest(template: dict[str, Any], app_id: str, public_url: str | None = None
             ) -> dict[str, Any]:
    if not GUID.match(app_id or ""):
        raise PackageError(f"MICROSOFT_APP_ID must be the bot's Entra app id (a GUID), "
                           f"not {app_id!r}")
    out = _fill(template, app_id)
    for bot in out.get("bots") or []:
        for command_list in bot.get("commandLists") or []:
            command_list["commands"] = commands()
    host = urlparse(public_url).hostname if public_url else None
    if host and host not in out.setdefault("validDomains", []):
        out["validDomains"].append(host)
    return out


def build(app_id: str, out: Path, *, source: Path = SOURCE,
          public_url: str | None = None) -> Path:
    path = source / "manifest.json"
    if not path.is_file():
        raise PackageError(f"no manifest at {path} (pass --source: the repository's teams/)")
    filled = manifest(json.loads(path.read_text(encoding="utf-8")), app_id, public_url)
    icons = filled.get("icons") or {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        # Teams wants the three files at the root of the zip, no folder.
        zf.writestr("manifest.json", json.dumps(filled, indent=2, ensure_ascii=False))
        for name in (icons.get("color"), icons.get("outline")):
            if not name or not (source / name).is_file():
                raise PackageError(f"icon {name!r} not found in {source}")
            zf.write(source / name, arcname=name)
    return out
