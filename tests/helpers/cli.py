"""Run the real `tokencoach` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tokencoach(*args: str, database_url: str | None = None, config: Path | str | None = None,
               env: dict[str, str] | None = None, timeout: float = 120,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "MICROSOFT_", "TOKENCOACH_", "DATABASE_URL"))}
    if database_url:
        full_env["DATABASE_URL"] = database_url
    full_env["TOKENCOACH_CONFIG"] = str(config or REPO / "app.yaml")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot", "--log-format", "text", *args],
                          cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
