"""The SQLite parse worker never outlives its parent (issue #22, item 6): kill -9 the
`tokencoach ingest` process in the middle of a large file and its worker goes too. The
worker is SQLite's (PostgreSQL parses in the writing process), so this runs on SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bot.usage.file_worker import MIN_BYTES
from tests.helpers.cli import REPO
from tests.helpers.processes import alive, clean_env, command_line, descendants

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_killing_the_ingest_process_ends_its_parse_worker(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        i = 0
        while f.tell() < MIN_BYTES + 1024 * 1024:
            f.write(json.dumps({"occurred_at": f"2026-11-{1 + i % 17:02d}T{i % 24:02d}:00:00Z",
                                "user": "tomas.novak@acme.example", "model": "gpt-4o",
                                "input_tokens": i, "output_tokens": 7, "cost_usd": "0.001",
                                "id": f"w-{i}", "padding": "x" * 100}) + "\n")
            i += 1
    proc = subprocess.Popen([sys.executable, "-m", "bot", "ingest", str(path)], cwd=REPO,
                            env=clean_env(DATABASE_URL=rt.env.database_url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not workers:
            workers = [p for p in descendants(proc.pid) if "spawn_main" in command_line(p)
                       and "resource_tracker" not in command_line(p)]
            await asyncio.sleep(0.05)
        assert workers, "the ingest should have started its parse worker"
        await asyncio.sleep(0.5)  # mid-ingest: the worker is parsing or waiting to hand over
        assert proc.poll() is None, "the kill should land mid-ingest"
        others = [p for p in descendants(proc.pid) if p not in workers]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in workers + others):
            await asyncio.sleep(0.1)
        left = [(p, command_line(p)) for p in workers + others if alive(p)]
        assert left == [], left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:  # before the fix: don't leave the orphan behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
