"""`pytest specs -n 2` against `-n 0` on four specs with work to share, cold and warm.

Run: .venv/bin/python benchmarks/bench_xdist.py [--rounds 3] [--samples 200] [--tree LABEL=PATH ...]
     [--pytest-arg=-p --pytest-arg=no:benchmark]

Builds a project in a temporary folder: four MobileNet-style models of different widths and resolutions
(benchmarks/models.py), each with its own spec: int8-dynamic, int8-static and fp16, on host, with parity,
accuracy, size and ops budgets. Then, in interleaved rounds (the order of -n 0 and -n 2 alternating), runs
`pytest specs` cold (an empty cache folder) and warm (the same folder again), with and without xdist.

Printed per configuration: min and median wall seconds, the -n 0 / -n 2 ratio, the summed per-test
durations (JUnit), the CPU seconds of the whole run (every process it waited for: on a machine other
work shares, the same work done twice shows here, whatever the wall clock says), the outputs and
artifacts each run computed (the progress lines of finished computations: with -n 2 they must equal
-n 0's, or something was computed twice) and the 1-minute load average when the runs started.

Trees. `--tree before=/path/to/an/earlier/checkout` adds another tree's edgecheck (first on the path) to
the same rounds, in an order that rotates each round, so that before and after see the same load; a
table per tree. `--pytest-arg` adds arguments to every run (e.g. `-p no:benchmark` for a user's run
without the dev extra's plugins).

Threads. The specs say `threads: 1`: two workers each running a 2-thread session on 2 cores cannot be faster
than one process running the same sessions on 2 threads; with one thread per session, two workers use the
two cores. A second configuration leaves the host target's default (one thread per core) to show both.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precompile import compile_edgecheck  # noqa: E402
from models import images, mobilenet_style  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# (name, width, resolution, seed): four models of different sizes
MODELS = [("mobilenet-a", 1.0, 160, 0), ("mobilenet-b", 0.75, 192, 1), ("mobilenet-c", 1.0, 128, 2),
          ("mobilenet-d", 0.5, 224, 3)]
SPEC = """\
edgecheck: 1
name: {name}
model: {{path: ../models/{name}.onnx}}
data:
  calibration: ../models/{name}-calibration.npz
  evaluation: {{path: ../models/{name}-evaluation.npz, labels: labels, metric: top1}}
  parity_samples: {samples}
compress: [int8-dynamic, int8-static, fp16]
targets:
  host:
    backends: [onnxruntime]
{threads}    budgets:
      parity: {{cosine: 0.5}}
      accuracy_drop: 100
      size_mb: 50
      ops: {{unsupported: 0}}
"""
DONE = r" … \d+(?:\.\d+)? (?:ms|s)$"
OUTPUTS_DONE = re.compile(r"^(?:\[gw\d+\] )?((?:reference )?outputs of .*)" + DONE, re.M)
MADE_DONE = re.compile(r"^(?:\[gw\d+\] )?(making .*)" + DONE, re.M)


@dataclass
class Run:
    wall_s: float
    tests_s: float  # the summed durations of the tests (JUnit)
    cpu_s: float  # user + system CPU seconds of the run and every process it waited for
    outputs: int  # computations of outputs that finished
    artifacts: int  # artifacts made
    load: float  # 1-minute load average when the run started


def build_project(folder: Path, samples: int, threads: int | None) -> Path:
    """The project: models, their data (labels: the model's own top-1, a tenth of them moved), four specs."""
    import onnxruntime as ort

    models, specs = folder / "models", folder / "specs"
    models.mkdir(parents=True)
    specs.mkdir()
    for name, width, resolution, seed in MODELS:
        path = mobilenet_style(models / f"{name}.onnx", width=width, resolution=resolution, seed=seed)
        inputs = images(samples, resolution=resolution, seed=seed + 10)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        labels = session.run(None, {"image": inputs})[0].argmax(axis=1)
        labels[::10] = (labels[::10] + 1) % 100
        np.savez(models / f"{name}-evaluation.npz", image=inputs, labels=labels)
        np.savez(models / f"{name}-calibration.npz", image=images(32, resolution=resolution, seed=seed + 20))
        shown = f"    threads: {threads}\n" if threads else ""
        (specs / f"{name}.yaml").write_text(SPEC.format(name=name, samples=samples, threads=shown))
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


def pytest_run(project: Path, cache: Path, workers: int, tree: Path = ROOT, extra: tuple[str, ...] = ()) -> Run:
    """One `pytest specs` in a fresh process, with `tree`'s edgecheck first on the path: its wall time, summed
    test durations and what it computed."""
    junit = cache.parent / f"junit-{workers}.xml"
    command = [sys.executable, "-m", "pytest", "specs", "-q", "-p", "no:cacheprovider", "-n", str(workers),
               "-o", "edge_progress_after=0", f"--edge-cache-dir={cache}", f"--junitxml={junit}", *extra]
    # byte-code caching on, as on a normal machine (this workplace sets PYTHONDONTWRITEBYTECODE=1)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), environment.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise SystemExit(f"pytest -n {workers} failed in {project}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    tests = sum(float(case.get("time", 0)) for case in ET.parse(junit).iter("testcase"))
    return Run(wall, tests, cpu, len(OUTPUTS_DONE.findall(done.stdout)), len(MADE_DONE.findall(done.stdout)), load)


def measure(project: Path, rounds: int, trees: dict[str, Path],
            extra: tuple[str, ...] = ()) -> dict[str, dict[tuple[int, str], list[Run]]]:
    """Interleaved rounds: each round runs every tree (in an order rotating each round), and for each -n 0 and
    -n 2 (alternating which goes first), each cold then warm."""
    runs: dict[str, dict[tuple[int, str], list[Run]]] = {label: {} for label in trees}
    labels = list(trees)
    for index in range(rounds):
        for label in labels[index % len(labels):] + labels[:index % len(labels)]:
            for workers in ((0, 2) if index % 2 == 0 else (2, 0)):
                with tempfile.TemporaryDirectory() as scratch:
                    cache = Path(scratch) / "cache"
                    for state in ("cold", "warm"):
                        runs[label].setdefault((workers, state), []).append(
                            pytest_run(project, cache, workers, trees[label], extra))
    return runs


def table(title: str, runs: dict[tuple[int, str], list[Run]]) -> None:
    print(f"\n## {title}")
    print("| run | -n | wall min s | wall median s | -n0/-n2 (min, median) | summed test s (median) | "
          "CPU s (median) | outputs computed | artifacts made | load avg (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for state in ("cold", "warm"):
        walls = {n: [r.wall_s for r in runs[(n, state)]] for n in (0, 2)}
        for workers in (0, 2):
            found = runs[(workers, state)]
            ratio = ""
            if workers == 2:
                ratio = (f"**{min(walls[0]) / min(walls[2]):.2f}x**, "
                         f"**{statistics.median(walls[0]) / statistics.median(walls[2]):.2f}x**")
            counts = sorted({(r.outputs, r.artifacts) for r in found})
            print(f"| {state} | {workers} | {min(walls[workers]):.2f} | {statistics.median(walls[workers]):.2f} | "
                  f"{ratio} | {statistics.median(r.tests_s for r in found):.2f} | "
                  f"{statistics.median(r.cpu_s for r in found):.1f} | "
                  f"{'/'.join(str(c[0]) for c in counts)} | {'/'.join(str(c[1]) for c in counts)} | "
                  f"{statistics.median(r.load for r in found):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200, help="evaluation and parity inputs per spec")
    parser.add_argument("--skip-default-threads", action="store_true",
                        help="only the threads: 1 configuration")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                        help="another checkout's edgecheck, measured in the same rounds (repeatable)")
    parser.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                        help="an argument added to every pytest run, e.g. --pytest-arg=-p --pytest-arg=no:benchmark")
    args = parser.parse_args()
    trees = {"this": ROOT}
    for given in args.tree:
        label, _, path = given.partition("=")
        if not path:
            parser.error(f"--tree {given!r}: give LABEL=PATH")
        trees[label] = Path(path).resolve()
    for tree in trees.values():
        print(compile_edgecheck(tree))
    from edgecheck.devices import load_profiles

    default_threads = load_profiles()["host"].threads_for("onnxruntime")
    print(__doc__.split("\n\n")[-1].replace("\n", " ").strip())
    print(f"\nCPUs: {os.cpu_count()}; load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"host's default threads for onnxruntime: {default_threads}; {args.rounds} interleaved rounds; "
          f"{len(MODELS)} specs x 3 entries + the original, {args.samples} inputs each; trees: "
          f"{', '.join(f'{label}={path}' for label, path in trees.items())}; extra pytest arguments: "
          f"{' '.join(args.pytest_arg) or 'none'}")
    configurations = [("threads: 1 in the specs", 1)]
    if not args.skip_default_threads:
        configurations.append((f"the host's default threads ({default_threads})", None))
    for title, threads in configurations:
        with tempfile.TemporaryDirectory() as folder:
            project = build_project(Path(folder) / "project", args.samples, threads)
            for label, runs in measure(project, args.rounds, trees, tuple(args.pytest_arg)).items():
                table(f"{title}, tree {label}" if len(trees) > 1 else title, runs)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
