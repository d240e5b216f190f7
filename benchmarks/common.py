"""Shared plumbing for the benchmarks: paths, the fixed clock, databases, processes, tables.

Every benchmark compares a figure with a floor measured in the same run on the same
machine, so the ratio means something even when the absolute numbers are noisy.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
WORK = CACHE / "work"  # throwaway SQLite files of one run
PYTHON = sys.executable
CONFIG = REPO / "app.yaml"
# The benchmarks' "now": stores and files are generated relative to it and every server or
# job runs with the clock stopped here, so cached data never ages out of a month or the
# retention window. A Wednesday, so the month and the week both have substance.
ANCHOR = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def log(message: str) -> None:
    """Progress on stderr (stdout of a child carries its JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- databases -----------------------------------------------------------------------------


def pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


def pg_dsn(name: str) -> str:
    """A plain libpq DSN for asyncpg (the raw driver)."""
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def migrate(url: str) -> None:
    """`tokencoach db upgrade` in a subprocess: the real schema, made the real way."""
    env = dict(os.environ, DATABASE_URL=url)
    result = subprocess.run([PYTHON, "-m", "bot", "--log-format", "text", "db", "upgrade"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"migration failed for {url}:\n{result.stdout}\n{result.stderr}")


def alembic_head() -> str:
    from bot.store.migrate import head_revision

    return head_revision() or "none"


async def _pg_admin(sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def pg_exists(name: str) -> bool:
    return bool(asyncio.run(_pg_admin("SELECT 1 FROM pg_database WHERE datname = $1", name)))


def pg_marker(name: str) -> str | None:
    """The version marker kept as the database's comment (no extra table in the schema)."""
    return asyncio.run(_pg_admin(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
        name))


def pg_set_marker(name: str, marker: str) -> None:
    quoted = marker.replace("'", "''")
    asyncio.run(_pg_admin(f"COMMENT ON DATABASE \"{name}\" IS '{quoted}'"))


def pg_drop(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_copy(template: str, name: str) -> None:
    pg_drop(name)
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))


def sqlite_marker(path: Path) -> str | None:
    marker = path.with_suffix(path.suffix + ".marker")
    return marker.read_text().strip() if marker.exists() and path.exists() else None


def sqlite_set_marker(path: Path, marker: str) -> None:
    path.with_suffix(path.suffix + ".marker").write_text(marker + "\n")


def sqlite_remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".marker"):
        Path(str(path) + suffix).unlink(missing_ok=True)


@contextmanager
def scratch_db(backend: str, template: str) -> Iterator[str]:
    """A throwaway copy of a template database (a SQLite path or a PostgreSQL name)."""
    if backend == "sqlite":
        WORK.mkdir(parents=True, exist_ok=True)
        dest = WORK / f"scratch-{uuid.uuid4().hex[:8]}.db"
        with sqlite3.connect(template) as src:  # a consistent copy even with a WAL
            src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(template, dest)
        try:
            yield sqlite_url(dest)
        finally:
            sqlite_remove(dest)
    else:
        name = f"tc_bench_scratch_{uuid.uuid4().hex[:8]}"
        pg_copy(template, name)
        try:
            yield pg_url(name)
        finally:
            pg_drop(name)


# --- processes -----------------------------------------------------------------------------


def proc_status(pid: int, key: str) -> int:
    """A kB figure from /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark child: no stray platform settings from the caller."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_", "TOKENCOACH_", "DATABASE_URL"))}
    env["TOKENCOACH_CONFIG"] = str(CONFIG)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_child(module: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> args`` and return the JSON it prints last."""
    result = subprocess.run([PYTHON, "-m", f"benchmarks.{module}", *args], cwd=REPO,
                            env=env or child_env(), stdout=subprocess.PIPE, stderr=None,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"benchmarks.{module} {' '.join(args)} failed "
                           f"(exit {result.returncode})")
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    return dict(json.loads(lines[-1]))


def emit(result: dict[str, Any]) -> None:
    """A child's answer to its parent: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


# --- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mem_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
    try:
        pg_version = str(asyncio.run(_pg_admin("SHOW server_version")))
    except Exception as exc:
        pg_version = f"unreachable ({type(exc).__name__})"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- results -------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
               "|" + "|".join("---" for _ in self.columns) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)


@dataclass
class Verdict:
    benchmark: str
    target: str
    measured: str
    met: bool
    why: str = ""


@dataclass
class Section:
    """One benchmark's results: its tables, its verdicts against the targets, its notes."""

    name: str
    method: str
    notes: str = ""
    tables: list[Table] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0


def fmt_int(n: float) -> str:
    return f"{round(n):,}"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def pct_of(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# --- servers in child processes ------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} did not become healthy in {timeout:.0f} s")


@contextmanager
def server(kind: str, *args: str, log_name: str = "server") -> Iterator[tuple[str, int]]:
    """Start ``python -m benchmarks.serve KIND`` in a child process: (base URL, pid)."""
    import signal

    WORK.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = WORK / f"{log_name}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([PYTHON, "-m", "benchmarks.serve", kind, "--port", str(port),
                                 *args], cwd=REPO, env=child_env(), stdout=log_file,
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(base, proc)
            yield base, proc.pid
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
