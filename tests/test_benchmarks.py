"""`make bench-quick` end to end: every benchmark runs at small scale and reports each
figure beside its floor. No speed is asserted here (that is what BENCHMARKS.md is for);
this keeps the benchmark command itself from rotting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_quick_benchmarks_run_and_report_every_figure_beside_its_floor(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS-quick.md"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report = out.read_text()
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \| (yes|\*\*no\*\*.*?) \|$", report, re.M)
    names = [r[0] for r in rows]
    for backend in ("sqlite", "postgresql"):
        assert any(n.startswith(f"ingest file (CSV) {backend}") for n in names)
        assert any(n.startswith(f"ingest webhook (NDJSON) {backend}") for n in names)
        assert f"/tokens {backend}" in names
    assert any(n.startswith("digests job path postgresql") for n in names)
    # Every throughput figure is a positive measurement, and the ratio rows name a floor.
    for name, target, measured, _ in rows:
        if "records/s" in target:
            assert int(measured.rstrip("/s").replace(",", "")) > 0, name
        if "of the bare floor" in target:
            mine, floor = re.findall(r"([\d,]+) (?:vs |req/s)", measured)[:2]
            assert int(mine.replace(",", "")) > 0 and int(floor.replace(",", "")) > 0, name
    assert re.search(r"^## Targets: \d+ of \d+ met$", report, re.M)
