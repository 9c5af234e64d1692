"""Warm re-runs: the wall time of `pytest specs --edge-target=rk3588` on an unchanged spec, pytest's start included.

Run: .venv/bin/python benchmarks/bench_warm.py [--rounds 5] [--tree LABEL=PATH ...] [--target rk3588]

Each tree (default: this checkout; add e.g. `--tree before=/tmp/edgecheck-before`, a copy of an earlier
commit, to compare) is run cold once (its own .edgecheck/cache, filled), then `--rounds` rounds, each
running every tree in turn, in an order that rotates each round so that drift hits every side alike, in
two modes:
- `nobytecode`: PYTHONDONTWRITEBYTECODE=1 (as on a machine that sets it): nothing is byte-compiled to
  disk, so every edgecheck module is compiled (and assertion-rewritten by pytest) from source each run;
- `bytecode`: bytecode written to and read from a folder of the tree's own (PYTHONPYCACHEPREFIX), the
  steady state of a machine without that setting.
Printed: min and median wall seconds per tree and mode, the load average before and after, and the
outcome line of each tree's last run (the verdicts must be the same across trees).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, target: str, env: dict[str, str]) -> tuple[float, str]:
    """One session in `tree` (its edgecheck first on the path): wall seconds and the outcome line."""
    command = [sys.executable, "-m", "pytest", "specs", f"--edge-target={target}", "-p", "no:cacheprovider", "-q"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if " passed" in line or " failed" in line]
    return wall, (lines[-1] if lines else f"exit {done.returncode}: {done.stdout[-300:]}{done.stderr[-300:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--target", default="rk3588")
    args = parser.parse_args()
    trees = {"this": ROOT}
    for given in args.tree:
        label, _, path = given.partition("=")
        trees[label] = Path(path).resolve()
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    prefixes = {label: tempfile.mkdtemp(prefix=f"bench-warm-pyc-{label}-") for label in trees}
    modes = {"nobytecode": lambda label: {**base, "PYTHONDONTWRITEBYTECODE": "1"},
             "bytecode": lambda label: {**base, "PYTHONPYCACHEPREFIX": prefixes[label]}}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    outcome: dict[str, str] = {}
    for label, tree in trees.items():  # cold, then once per mode so that the bytecode folder is filled
        wall, outcome[label] = run(tree, args.target, modes["nobytecode"](label))
        print(f"{label}: cold {wall:.2f} s: {outcome[label]}", flush=True)
        run(tree, args.target, modes["bytecode"](label))
    times: dict[tuple[str, str], list[float]] = {}
    labels = list(trees)
    for index in range(args.rounds):
        order = labels[index % len(labels):] + labels[:index % len(labels)]
        for mode, env_of in modes.items():
            for label in order:
                wall, outcome[label] = run(trees[label], args.target, env_of(label))
                times.setdefault((label, mode), []).append(wall)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nwarm `pytest specs --edge-target={args.target}`, wall seconds over {args.rounds} interleaved rounds "
          f"(load average before {' '.join(load_before)}, after {' '.join(load_after)}, {os.cpu_count()} CPUs)")
    print(f"{'tree':<12} {'mode':<11} {'min':>6} {'median':>7}")
    for (label, mode), walls in times.items():
        print(f"{label:<12} {mode:<11} {min(walls):>6.2f} {statistics.median(walls):>7.2f}")
    for label in trees:
        print(f"{label}: {outcome[label]}")


if __name__ == "__main__":
    main()
