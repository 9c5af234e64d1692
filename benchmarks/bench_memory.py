"""Memory: edgecheck's figures against `/usr/bin/time -v` on bare scripts. Target: within +-10 %.

Run: .venv/bin/python benchmarks/bench_memory.py [--rounds 3] [--threads 1]

For the shipped digits CNN (examples/digits/digits.onnx), the MobileNet-style model (width 0.5,
96x96) and a bigger variant (width 2.0, 1000 classes: a ~28 MB file, a footprint of tens of MB),
each round measures side by side:

- `/usr/bin/time -v python bare_load_run.py MODEL`: a bare script that imports numpy and onnxruntime,
  loads the model with edgecheck's session options, and runs the same feed as many times as
  edgecheck does (1 check run + warm-up + samples); "Maximum resident set size" is its peak;
- `/usr/bin/time -v python bare_import.py FEED` (imports numpy and onnxruntime and reads the input
  file, nothing else): the idle baseline, in the state edgecheck's worker takes its own in;
- edgecheck's `ModelRuns.measure` (a fresh worker, as a memory check runs), started twice: from this
  process, as a pytest session would (this process has built the models, so its own peak RSS is
  hundreds of MB, like a session that has compressed models), and from a lean driver process that
  imports edgecheck only.

Compared: `Measured.process_mib` with the bare load-run's maximum RSS, and `Measured.footprint_mib`
with the bare load-run's maximum minus the bare import's. Ratios are of medians over the rounds.

Why the figures may differ even when both are right:
- edgecheck's worker imports a few more modules than the bare script (its own worker, protocol and
  backend modules, json, resource, ...): a MiB or two more in its process peak, and in its baseline;
- edgecheck's baseline is the resident memory after the imports (VmRSS, after gc, with the feed
  loaded), and its peak restarts there (VmHWM after /proc/self/clear_refs): the footprint is
  what loading and running add to an idle process. The bare import's "maximum" is the import's
  transient peak, which can be above where it settles, so load-run minus import is the smaller
  figure when the import's transient is large;
- a tiny model (digits: a few hundred KB) has a footprint of a MiB or two, where page and arena
  granularity alone are more than 10 %.
Why "here" and "lean" are both measured: on Linux, a process started by fork/vfork+exec (Python's
subprocess) inherits its parent's peak RSS in getrusage's ru_maxrss, and clear_refs does not reset
that. edgecheck's worker therefore reports its own VmHWM (which starts afresh at exec) as the
process peak; measuring from this big process and from a lean one shows the figure does not depend
on who started the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
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

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
TOLERANCE = 0.10
TIME = "/usr/bin/time"

# the idle state edgecheck's baseline is taken in: runtime imported and the input file read, no model
BARE_IMPORT = '''\
import sys
import numpy as np
import onnxruntime
with np.load(sys.argv[1]) as data:
    feed = {name: data[name] for name in data.files}
'''

BARE_LOAD_RUN = '''\
import sys
import numpy as np
import onnxruntime as ort

model, feed_path, runs, threads = sys.argv[1:5]
''' + BARE_SESSION + '''for _ in range(int(runs)):
    sess.run(None, feed)
'''

# edgecheck driven from a process that holds nothing but edgecheck (its peak is below any worker's)
LEAN_DRIVER = '''\
import json, sys
from pathlib import Path
import numpy as np
from edgecheck.backends import get_backend
from edgecheck.measure.runs import ModelRuns, TimingPlan
from edgecheck.worker.client import WorkerPool

model, feed_path, warmup, samples, threads, device = sys.argv[1:7]
with np.load(feed_path) as data:
    feed = {name: data[name] for name in data.files}
pool = WorkerPool()
try:
    got = ModelRuns(pool, device).measure(get_backend("onnxruntime"), Path(model), int(threads), feed,
                                          TimingPlan(warmup_runs=int(warmup), samples=int(samples)))
finally:
    pool.close()
# the driver's own peak: VmHWM (its ru_maxrss would carry the benchmark's peak, inherited at exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"process_mib": got.process_mib, "footprint_mib": got.footprint_mib,
                  "baseline_mib": got.baseline_mib, "driver_peak_mib": hwm / 1024}))
'''


def max_rss_mib(*command: str) -> float:
    """`/usr/bin/time -v`'s "Maximum resident set size" of `command`, in MiB."""
    done = subprocess.run([TIME, "-v", *command], capture_output=True, text=True)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode != 0 or not match:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return int(match.group(1)) / 1024


def own_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verdict(ratio: float) -> str:
    return f"{ratio:.2f} {'ok' if abs(ratio - 1) <= TOLERANCE else 'OUT'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5, help="warm-up runs (edgecheck's, and as many bare)")
    parser.add_argument("--samples", type=int, default=20, help="timed runs (edgecheck's, and as many bare)")
    args = parser.parse_args()
    if not os.access(TIME, os.X_OK):
        raise SystemExit(f"{TIME} is needed (GNU time; apt-get install time)")

    import onnxruntime as ort

    runs_total = 1 + args.warmup + args.samples  # Runner.bind's check run, the warm-up, the timed runs
    device = host_device()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        with np.load(DIGITS / "test.npz") as data:
            digits_feed = {"input": data["input"][:1]}
        models = {
            "digits CNN (examples/digits)": (DIGITS / "digits.onnx", digits_feed),
            "MobileNet-style w0.5 96x96": (mobilenet_style(scratch / "small.onnx"), {"image": images(1, seed=3)}),
            "MobileNet-style w2.0 96x96 1000 classes": (
                mobilenet_style(scratch / "big.onnx", width=2.0, resolution=96, classes=1000),
                {"image": images(1, seed=3)}),
        }
        sizes = {name: model.stat().st_size / 2**20 for name, (model, _) in models.items()}
        feeds = {}
        for index, (name, (_, feed)) in enumerate(models.items()):
            feeds[name] = scratch / f"feed{index}.npz"
            np.savez(feeds[name], **feed)
        (scratch / "bare_import.py").write_text(BARE_IMPORT)
        (scratch / "bare_load_run.py").write_text(BARE_LOAD_RUN)
        (scratch / "lean_driver.py").write_text(LEAN_DRIVER)
        (scratch / "workers").mkdir()
        pool = WorkerPool(WorkerSettings(timeout_s=600.0), scratch / "workers")
        model_runs = ModelRuns(pool, device)
        backend = get_backend("onnxruntime")
        plan = TimingPlan(warmup_runs=args.warmup, samples=args.samples)
        lean_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

        print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, {args.threads} thread(s), "
              f"{runs_total} runs per load (1 check + {args.warmup} warm-up + {args.samples} timed); "
              f"this process's peak RSS after building the models: {own_peak_mib():.0f} MiB")
        print()
        print("Per round, MiB (imp = bare import max RSS, lr = bare load-run max RSS; edgecheck: proc = "
              "process_mib, fp = footprint_mib, base = baseline_mib; 'here' = started from this process)")
        print("| model | round | imp | lr | lr - imp | proc here | proc lean | fp here | fp lean | base here | "
              "lean driver VmHWM |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        results: dict[str, list[dict[str, float]]] = {name: [] for name in models}
        for round_index in range(1, args.rounds + 1):
            for name, (model, feed) in models.items():
                row: dict[str, float] = {}
                row["import"] = max_rss_mib(sys.executable, str(scratch / "bare_import.py"), str(feeds[name]))
                row["load_run"] = max_rss_mib(sys.executable, str(scratch / "bare_load_run.py"), str(model),
                                              str(feeds[name]), str(runs_total), str(args.threads))
                here = model_runs.measure(backend, model, args.threads, feed, plan)
                row.update(process_here=here.process_mib, footprint_here=here.footprint_mib,
                           baseline_here=here.baseline_mib)
                done = subprocess.run([sys.executable, str(scratch / "lean_driver.py"), str(model), str(feeds[name]),
                                       str(args.warmup), str(args.samples), str(args.threads), device],
                                      capture_output=True, text=True, env=lean_env)
                if done.returncode != 0:
                    raise SystemExit(f"lean driver failed:\n{done.stderr[-3000:]}")
                lean = json.loads(done.stdout.strip().splitlines()[-1])
                row.update(process_lean=lean["process_mib"], footprint_lean=lean["footprint_mib"],
                           driver_peak=lean["driver_peak_mib"])
                results[name].append(row)
                print(f"| {name} | {round_index} | {row['import']:.1f} | {row['load_run']:.1f} | "
                      f"{row['load_run'] - row['import']:.1f} | {row['process_here']:.1f} | "
                      f"{row['process_lean']:.1f} | {row['footprint_here']:.1f} | {row['footprint_lean']:.1f} | "
                      f"{row['baseline_here']:.1f} | "
                      f"{row['driver_peak']:.1f} |", flush=True)
        pool.close()

    print()
    print(f"Medians over {args.rounds} rounds, MiB; ratio = edgecheck / bare, 'ok' within +-{TOLERANCE:.0%}")
    print("| model | file MiB | bare load-run | edgecheck process here | ratio | edgecheck process lean | ratio | "
          "bare load-run - import | edgecheck footprint here | ratio | edgecheck footprint lean | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    outcomes = {"process here": [], "process lean": [], "footprint": []}
    for name, rows in results.items():
        med = {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
        bare_fp = float(np.median([r["load_run"] - r["import"] for r in rows]))
        ratios = {"process here": med["process_here"] / med["load_run"],
                  "process lean": med["process_lean"] / med["load_run"],
                  "footprint": med["footprint_here"] / bare_fp if bare_fp > 0 else float("inf"),
                  "footprint lean": med["footprint_lean"] / bare_fp if bare_fp > 0 else float("inf")}
        for key in outcomes:
            outcomes[key].append(abs(ratios[key] - 1) <= TOLERANCE)
        print(f"| {name} | {sizes[name]:.2f} | {med['load_run']:.1f} | {med['process_here']:.1f} | "
              f"{verdict(ratios['process here'])} | {med['process_lean']:.1f} | {verdict(ratios['process lean'])} | "
              f"{bare_fp:.1f} | {med['footprint_here']:.1f} | {verdict(ratios['footprint'])} | "
              f"{med['footprint_lean']:.1f} | {verdict(ratios['footprint lean'])} |")
    print()
    for key, oks in outcomes.items():
        print(f"target +-{TOLERANCE:.0%}, {key}: {'met' if all(oks) else 'NOT met'} "
              f"({sum(oks)} of {len(oks)} models within)")


if __name__ == "__main__":
    main()
