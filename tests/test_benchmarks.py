"""The benchmark command end to end, at its smallest scale (`--smoke`): every benchmark runs
and reports each figure beside its floor. No speed is asserted here (that is what
BENCHMARKS.md is for); this keeps the benchmark command itself from rotting.

It has its own time limit, above the global one (pytest-timeout's 300 s) and above the
subprocess's own, so on a loaded machine the subprocess's limit speaks first and says so;
the smoke scale takes a few minutes on a quiet 2-core machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN_LIMIT = 1500  # seconds for the subprocess
pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_LIMIT + 120)]


def test_smoke_benchmarks_run_and_report_every_figure_beside_its_floor(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS-smoke.md"
    try:
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks", "--smoke", "--output", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=RUN_LIMIT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`python -m benchmarks --smoke` took over {RUN_LIMIT} s: "
                    f"{(exc.stderr or b'')[-2000:]!r}")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report = out.read_text()
    assert report.startswith("# Benchmarks (smoke run)")
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \| (yes|\*\*no\*\*.*?) \|$", report, re.M)
    names = [r[0] for r in rows]
    for backend in ("sqlite", "postgresql"):
        assert any(n.startswith(f"ingest file (CSV) {backend}") for n in names)
        assert any(n.startswith(f"ingest webhook (NDJSON) {backend}") for n in names)
        assert f"/tokens {backend}" in names
    assert any(n.startswith("digests job path postgresql") for n in names)
    targets = [r[1] for r in rows]
    assert any("of the COPY floor" in t for t in targets)
    assert "| raw COPY (COPY floor) |" in report
    # Every throughput figure is a positive measurement; the ratio rows name their floor and
    # the server CPU per card.
    for name, target, measured, _ in rows:
        if "records/s" in target:
            assert int(measured.rstrip("/s").replace(",", "")) > 0, name
        if "of slack_bolt alone" in target and "throughput" in target:
            mine, floor = re.findall(r"([\d,]+) (?:vs |req/s)", measured)[:2]
            assert int(mine.replace(",", "")) > 0 and int(floor.replace(",", "")) > 0, name
            assert re.search(r"[\d,]+ µs of server CPU per card", measured), measured
    assert "| CPU µs/req |" in report
    assert re.search(r"^## Targets: \d+ of \d+ met$", report, re.M)
