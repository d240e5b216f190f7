"""A closed-loop HTTP load generator (aiohttp), run in the benchmark's own process.

``concurrency`` workers each send a request, wait for the whole answer, and send the next,
for ``duration`` seconds. Latency is measured per request from send to last byte; the
server's CPU use over the same window comes from /proc, so a level can say whether it
saturated the server's core; the client's own CPU use is reported too (a client that is
itself saturated understates the server's capacity).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from benchmarks.common import cpu_seconds, percentile

# (body, headers) for one request; made fresh per level (Slack signatures carry a time).
Request = tuple[bytes, dict[str, str]]


@dataclass
class Level:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50: float
    p99: float
    server_cpu: float  # share of one core the server process used
    client_cpu: float  # share of one core this process used

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def run_level(url: str, requests: list[Request], *, concurrency: int, duration: float,
                    server_pid: int, ok: Callable[[int, bytes], bool]) -> Level:
    """One level: ``concurrency`` workers cycling through ``requests`` for ``duration`` s."""
    latencies: list[float] = []
    errors = 0
    pool = itertools.cycle(requests)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        deadline = 0.0

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                body, headers = next(pool)
                started = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        answer = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                if ok(status, answer):
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        # Open the connections first, so the window measures requests, not handshakes.
        deadline = time.perf_counter() + min(1.0, duration / 4)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        cpu0, own0, t0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
        deadline = t0 + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        server_cpu = (cpu_seconds(server_pid) - cpu0) / elapsed
        client_cpu = (time.process_time() - own0) / elapsed
    latencies.sort()
    return Level(concurrency, len(latencies), errors, elapsed, percentile(latencies, 50),
                 percentile(latencies, 99), server_cpu, client_cpu)
