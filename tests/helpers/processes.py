"""Real `tokencoach serve` processes for multi-replica and fault tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from tests.helpers.cli import REPO
from tests.helpers.server import free_port


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc, Linux)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    kids = [int(k) for k in handle.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _session_of(pid: int | str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[3])  # field 6: session id
    except (OSError, ValueError, IndexError):
        return None


def ours(executable: str) -> list[int]:
    """Processes of this login session running ``executable`` (this worktree's venv
    python), orphans included: they keep the session when their parent dies. Other
    people's processes on a shared machine have another session or another venv."""
    session = _session_of("self")
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _session_of(name) == session:
            argv0 = command_line(int(name)).split(" ", 1)[0]
            if argv0 == executable:
                found.append(int(name))
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_", "TOKENCOACH_", "DATABASE_URL"))}
    env["TOKENCOACH_CONFIG"] = str(REPO / "app.yaml")
    env.update(extra)
    return env


async def wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                detail = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"server exited with {proc.returncode}: {detail}")
            try:
                async with http.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{base} did not become healthy")


@asynccontextmanager
async def serve_process(
    env: dict[str, str], *args: str, log_level: str = "INFO"
) -> AsyncIterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--log-format", "text", "--log-level", log_level,
         "serve", "--port", str(port), *args],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
