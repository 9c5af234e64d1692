"""Cold against warm: the same pytest run with an empty artifact cache, then with a full one.

Run: .venv/bin/python benchmarks/bench_cache.py [--repeats 3]

Each repeat runs the example specs (`pytest specs --edge-target=all`) with a fresh cache folder
(cold: every recipe runs, every model runs), then again on that folder (warm: artifacts and outputs
come from the cache), side by side. The same for a MobileNet-style model (built here) whose recipes
take longer. Printed: the process wall time, pytest's own session time (collection and checks,
without interpreter start-up and imports of pytest plugins), and warm/cold ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import images, mobilenet_style  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MOBILENET_SPEC = """\
edgecheck: 1
model: {path: ../model.onnx}
data:
  calibration: ../calibration.npz
  parity_samples: 64
compress: [fp16, int8-dynamic, int8-static, {name: int8-pc, steps: [int8-static: {per_channel: true}]},
           prune: {sparsity: 0.5}, [prune: {sparsity: 0.25, structured: true}, int8-static], lowrank]
targets:
  host:
    budgets: {parity: {top1_agreement: 0.0}, size_mb: 10}
"""


def pytest_run(project: Path, cache: Path, *args: str) -> tuple[float, float, str]:
    """(wall seconds, pytest's reported seconds, outcome line) of one run in a fresh process."""
    command = [sys.executable, "-m", "pytest", "specs", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               f"--edge-cache-dir={cache}", *args]
    # byte-code caching on, as on a normal machine (this workplace sets PYTHONDONTWRITEBYTECODE=1, which
    # makes every run re-compile pytest's rewritten plugin modules and swamps a warm run's figure)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    last = done.stdout.strip().splitlines()[-1]
    match = re.search(r" in ([\d.]+)s", last)
    if done.returncode != 0 or not match:
        raise SystemExit(f"pytest failed in {project}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return wall, float(match.group(1)), last.strip("= ")


def compare(title: str, project: Path, repeats: int, *args: str) -> None:
    print(f"\n## {title}")
    print("| repeat | cold wall s | warm wall s | wall ratio | cold pytest s | warm pytest s | pytest ratio |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for repeat in range(1, repeats + 1):
        with tempfile.TemporaryDirectory() as folder:
            cache = Path(folder) / "cache"
            cold = pytest_run(project, cache, *args)
            warm = pytest_run(project, cache, *args)
        ratios.append((cold[0] / warm[0], cold[1] / warm[1]))
        print(f"| {repeat} | {cold[0]:.2f} | {warm[0]:.2f} | {cold[0] / warm[0]:.1f}x | {cold[1]:.2f} | "
              f"{warm[1]:.2f} | {cold[1] / warm[1]:.1f}x |")
    print(f"outcome: {warm[2]}; median ratio wall {np.median([r[0] for r in ratios]):.1f}x, "
          f"pytest {np.median([r[1] for r in ratios]):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    compare("example specs (specs/digits.yaml, --edge-target=all)", ROOT, args.repeats, "--edge-target=all")
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "specs").mkdir()
        mobilenet_style(project / "model.onnx", width=1.0, resolution=160)
        np.savez(project / "calibration.npz", image=images(64, resolution=160, seed=2))
        (project / "specs" / "mobilenet.yaml").write_text(MOBILENET_SPEC)
        compare("MobileNet-style, width 1.0, 160x160 (7 recipes, host)", project, args.repeats)


if __name__ == "__main__":
    main()
