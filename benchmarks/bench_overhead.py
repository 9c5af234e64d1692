"""Harness overhead: edgecheck's median inference time against a bare `session.run` loop. Target: <= 1 %.

Run: .venv/bin/python benchmarks/bench_overhead.py [--rounds 9] [--samples 500] [--threads 1] [--size 128]

The model is the MobileNet-style classifier (width 1.0, input `--size` x `--size`, built here), at a
size where one inference takes a few ms on one thread. Each round runs, in a rotating order so that
drift and order effects hit every side alike:

- A: a bare loop in a fresh Python subprocess: import numpy and onnxruntime, load the model with
  edgecheck's session options (intra-op threads, inter-op 1, sequential, log level 3), one check run
  (as `Runner.bind` makes), `--warmup` warm-up runs, then `--samples` timed `sess.run(None, feed)`
  calls with time.perf_counter_ns and the garbage collector off; it prints its median as JSON;
- B: `ModelRuns.measure` (a fresh edgecheck worker, exactly as a latency check runs) with the same
  warm-up and sample count, on the same feed;
- A': a second bare loop, the control: A'/A - 1 is this machine's noise floor for a median, and
  says whether a 1 % difference can be told apart from noise here at all.

Printed per round: the medians, B/A - 1 and A'/A - 1 in %, each side's spread (inter-quartile range
of its samples), and B/A - 1 at the 10th percentile (load from other processes only ever adds time,
so a low percentile is the less disturbed estimate of what the call itself costs); then overall: the
median of the per-round ratios (the figure judged against the target), their range, and the pooled
medians. Nothing here is a test; figures vary with the machine and its load. On a shared, noisy box
(other jobs, steal time) two bare loops in consecutive processes differ by several % and sometimes
20 %: the A' control says how far apart two identical sides land, and a ratio inside that floor
means "no overhead measurable here", not "meets 1 %" or "misses it".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import BARE_SESSION, images, mobilenet_style  # noqa: E402

from edgecheck.backends import get_backend  # noqa: E402
from edgecheck.execute import host_device  # noqa: E402
from edgecheck.measure.runs import ModelRuns, TimingPlan  # noqa: E402
from edgecheck.worker.client import WorkerPool, WorkerSettings  # noqa: E402

TARGET_PCT = 1.0

# A: the bare loop, run as its own script in a fresh interpreter (the same process conditions as a worker)
BARE_LOOP = '''\
import gc, json, sys, time
import numpy as np
import onnxruntime as ort

model, feed_path, warmup, samples, threads, out = sys.argv[1:7]
''' + BARE_SESSION + '''sess.run(None, feed)  # the check run Runner.bind makes before warm-up
for _ in range(int(warmup)):
    sess.run(None, feed)
clock = time.perf_counter_ns
times = []
append = times.append
gc.disable()
for _ in range(int(samples)):
    start = clock()
    sess.run(None, feed)
    end = clock()
    append(end - start)
gc.enable()
np.save(out, np.asarray(times, dtype=np.int64))
print(json.dumps({"median_ms": float(np.median(times)) / 1e6, "count": len(times)}))
'''


def bare(script: Path, model: Path, feed: Path, warmup: int, samples: int, threads: int, out: Path) -> np.ndarray:
    """Samples (ms) of one bare loop in a fresh interpreter."""
    done = subprocess.run([sys.executable, str(script), str(model), str(feed), str(warmup), str(samples),
                           str(threads), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bare loop failed:\n{done.stderr[-3000:]}")
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    times = np.load(out) / 1e6
    assert len(times) == reported["count"] == samples
    return times


def harness(runs: ModelRuns, model: Path, feed: dict[str, np.ndarray], warmup: int, samples: int,
            threads: int) -> np.ndarray:
    """Samples (ms) of one edgecheck measurement (a fresh worker)."""
    measured = runs.measure(get_backend("onnxruntime"), model, threads, feed,
                            TimingPlan(warmup_runs=warmup, warmup_s=0.0, samples=samples, max_seconds=None,
                                       exclusive=True))
    times = np.asarray(measured.stats.samples_ms, dtype=float)
    assert measured.stats.count == samples, measured.stats.count
    return times


def iqr(times: np.ndarray) -> str:
    q1, q3 = np.percentile(times, [25, 75])
    return f"{q1:.3f}-{q3:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9, help="rounds (the side order rotates each round)")
    parser.add_argument("--samples", type=int, default=500, help="timed runs per side per round")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up runs per side per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=128, help="input resolution of the model (multiple of 32)")
    parser.add_argument("--no-control", action="store_true", help="skip the second bare loop (A')")
    args = parser.parse_args()

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        model = mobilenet_style(scratch / "model.onnx", width=1.0, resolution=args.size)
        feed = {"image": images(1, resolution=args.size, seed=3)}
        feed_path = scratch / "feed.npz"
        np.savez(feed_path, **feed)
        script = scratch / "bare_loop.py"
        script.write_text(BARE_LOOP)
        (scratch / "workers").mkdir()
        runs = ModelRuns(WorkerPool(WorkerSettings(timeout_s=600.0), scratch / "workers"), host_device())
        sides = ["A", "B"] if args.no_control else ["A", "B", "A'"]
        print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, {host_device()}")
        print(f"MobileNet-style width 1.0, {args.size}x{args.size}, batch 1, {args.threads} thread(s); per side "
              f"and round: 1 check run + {args.warmup} warm-up runs, {args.samples} timed runs")
        print("A = bare session.run loop (fresh process), B = edgecheck ModelRuns.measure (fresh worker)"
              + ("" if args.no_control else ", A' = a second bare loop (noise floor)"))
        print()
        head = "| round | order | A median ms | B median ms | B/A - 1 |"
        rule = "|---|---|---|---|---|"
        if not args.no_control:
            head += " A' median ms | A'/A - 1 |"
            rule += "---|---|"
        print(head + " A IQR ms | B IQR ms | p10 B/A - 1 |")
        print(rule + "---|---|---|")
        pooled: dict[str, list[np.ndarray]] = {side: [] for side in sides}
        ratios, controls, lows = [], [], []
        for index in range(args.rounds):
            order = sides[index % len(sides):] + sides[:index % len(sides)]
            got: dict[str, np.ndarray] = {}
            for side in order:
                if side == "B":
                    got[side] = harness(runs, model, feed, args.warmup, args.samples, args.threads)
                else:
                    got[side] = bare(script, model, feed_path, args.warmup, args.samples, args.threads,
                                     scratch / "bare.npy")
                pooled[side].append(got[side])
            med = {side: float(np.median(times)) for side, times in got.items()}
            ratios.append(med["B"] / med["A"] - 1)
            row = (f"| {index + 1} | {' '.join(order)} | {med['A']:.3f} | {med['B']:.3f} | "
                   f"{ratios[-1] * 100:+.2f} % |")
            if not args.no_control:
                control = med["A'"]
                controls.append(control / med["A"] - 1)
                row += f" {control:.3f} | {controls[-1] * 100:+.2f} % |"
            lows.append(np.percentile(got["B"], 10) / np.percentile(got["A"], 10) - 1)
            print(row + f" {iqr(got['A'])} | {iqr(got['B'])} | {lows[-1] * 100:+.2f} % |", flush=True)
        runs.workers.close()

    overall = float(np.median(ratios)) * 100
    whole = {side: np.concatenate(parts) for side, parts in pooled.items()}
    pooled_ratio = (np.median(whole["B"]) / np.median(whole["A"]) - 1) * 100
    print()
    print(f"overall: B/A - 1 = {overall:+.2f} % (median of {len(ratios)} rounds; range "
          f"{min(ratios) * 100:+.2f} .. {max(ratios) * 100:+.2f} %); pooled medians A {np.median(whole['A']):.3f} ms, "
          f"B {np.median(whole['B']):.3f} ms ({pooled_ratio:+.2f} %)")
    print(f"at the 10th percentile: B/A - 1 = {np.median(lows) * 100:+.2f} % (median of rounds; range "
          f"{min(lows) * 100:+.2f} .. {max(lows) * 100:+.2f} %)")
    if controls:
        floor = float(np.median(np.abs(controls))) * 100
        print(f"noise floor: A'/A - 1 median {np.median(controls) * 100:+.2f} %, range {min(controls) * 100:+.2f} .. "
              f"{max(controls) * 100:+.2f} % (median |A'/A - 1| {floor:.2f} %)")
    verdict = "met" if overall <= TARGET_PCT else "NOT met"
    note = ""
    if controls and abs(overall) <= floor:
        note = f"; inside the noise floor ({floor:.2f} %): no overhead is measurable on this machine at this load"
    elif controls and floor > TARGET_PCT:
        note = f"; the noise floor ({floor:.2f} %) is above the target, so read this with care"
    print(f"target: overhead <= {TARGET_PCT:g} % -> {verdict} ({overall:+.2f} %){note}")


if __name__ == "__main__":
    main()
