"""`python -m benchmarks [--quick | --smoke] [--only NAME ...] [--backend B ...] [--output PATH]`.

Runs the benchmarks (ingest, tokens, digest) and writes the report: BENCHMARKS.md for a
full run, benchmarks/.cache/BENCHMARKS-quick.md for --quick (a small-scale run CI can
afford; its numbers are for catching regressions, not for the record), and
benchmarks/.cache/BENCHMARKS-smoke.md for --smoke (the smallest run that still goes
through every benchmark and the report: what `make test` runs to keep the command working;
its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import digest, ingest, tokens
from benchmarks.common import BACKENDS, CACHE, REPO, Section, log, machine
from benchmarks.stores import describe

BENCHMARKS = {"ingest": ingest.run, "tokens": tokens.run, "digest": digest.run}


def report(sections: list[Section], *, quick: bool, command: str, started: datetime,
           seconds: float, info: dict[str, str], smoke: bool = False) -> str:
    scale = tokens.scale_of(quick, smoke)
    verdicts = [v for s in sections for v in s.verdicts]
    met = sum(v.met for v in verdicts)
    make = "make test's smoke test" if smoke else "make bench-quick" if quick else "make bench"
    lines = [
        "# Benchmarks" + (" (smoke run)" if smoke else " (quick run)" if quick else ""),
        "",
        f"Produced by `{make}`, which runs "
        "(from the repository root, in the project's virtualenv):",
        "",
        "```",
        command,
        "```",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} minutes. Every figure in "
        "this file comes from that one run, and every figure stands beside a floor measured "
        "in the same run on the same machine (the ratio is the number to watch: absolute "
        "figures move with the machine and its load).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {info['cpu']} |",
        f"| cores | {info['cores']} |",
        f"| RAM | {info['ram']} |",
        f"| OS | {info['os']} |",
        f"| Python | {info['python']} |",
        f"| SQLite | {info['sqlite']} |",
        f"| PostgreSQL | {info['postgresql']} (127.0.0.1, default settings) |",
        f"| load average at start | {info['load']} |",
        "",
        "The machine is shared (other work ran on its 2 cores during the run), so absolute "
        "figures are noisy; the floors share the noise.",
        "",
        f"## Targets: {met} of {len(verdicts)} met",
        "",
        "| benchmark | target | measured | met |",
        "|---|---|---|---|",
    ]
    reasons: dict[str, str] = {}  # why a target is missed, once each, as footnotes
    for v in verdicts:
        mark = "yes"
        if not v.met:
            mark = "**no**"
            if v.why:
                reasons.setdefault(v.why, f"[{len(reasons) + 1}]")
                mark += " " + reasons[v.why]
        lines.append(f"| {v.benchmark} | {v.target} | {v.measured} | {mark} |")
    if reasons:
        lines.append("")
        lines += [f"{ref} {why}." for why, ref in reasons.items()]
    lines += ["", "## Data", "", describe(scale), ""]
    for section in sections:
        lines += [f"## {section.name} ({section.seconds / 60:.1f} min)", ""]
        lines += [section.method.strip(), ""]
        for table in section.tables:
            lines += [table.markdown(), ""]
        if section.notes:
            lines += ["### What limits it", "", section.notes.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small scale, for CI")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest scale: checks the command works (make test)")
    parser.add_argument("--complete", action="store_true",
                        help="ingest every path at 1M and 10M records on both backends "
                             "(about 50 minutes on the 2-core reference machine)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS),
                        help="run only these benchmarks")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--output", type=Path, help="where to write the report")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    output = args.output or (CACHE / "BENCHMARKS-smoke.md" if args.smoke
                             else CACHE / "BENCHMARKS-quick.md" if args.quick
                             else REPO / "BENCHMARKS.md")
    command = "python -m benchmarks" + (" " + shlex.join(argv if argv is not None
                                                           else sys.argv[1:])
                                         if (argv if argv is not None else sys.argv[1:])
                                         else "")
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    info = machine()
    log(f"machine: {info}")
    sections = []
    for name in names:
        log(f"== {name}")
        if name == "ingest":
            sections.append(ingest.run(quick=args.quick, backends=tuple(args.backend),
                                       complete=args.complete, smoke=args.smoke))
        else:
            sections.append(BENCHMARKS[name](quick=args.quick, backends=tuple(args.backend),
                                             smoke=args.smoke))
    seconds = time.perf_counter() - t0
    text = report(sections, quick=args.quick, command=command, started=started,
                  seconds=seconds, info=info, smoke=args.smoke)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    log(f"wrote {output} ({seconds / 60:.1f} min)")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
