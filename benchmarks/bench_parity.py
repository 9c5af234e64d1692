"""The cold parity job: edgecheck against a bare script and Polygraphy doing the same work.

Run: .venv/bin/python benchmarks/bench_parity.py [--rounds 5] [--samples 100] [--size 320]
(Polygraphy: `pip install 'pytest-edgecheck[bench]'`; without it the table says "not installed".)

The project is built here, in a temporary folder: a YOLOv8n-sized detector (benchmarks/detectors.py) at
1x3x`--size`x`--size` with random He-scaled weights (zero weights would fold away), `--samples` parity
inputs, `compress: [int8-dynamic]` and a parity budget on the host target. Each round runs, in turn:

- edgecheck cold: `pytest specs --edge-target=host` in a fresh process on an empty cache folder;
- edgecheck warm: the same, again, on the cache the cold run filled;
- bare: a script a user would write for the same job: quantize_dynamic, the FP32 model on one thread
  (edgecheck's reference), the INT8 model at the thread count edgecheck gives the host target, every
  parity statistic edgecheck reports (max_abs, mean_abs, max_rel, rel_l2, cosine, SNR) per output;
- Polygraphy: quantize_dynamic, then its Comparator over the same two sessions (same thread counts) and
  the same inputs, and its compare_accuracy.

Printed: minimum and median wall seconds of each side and their ratios to the bare script's; the load
average before and after, the CPU model and count, the thread counts; and the stages of one cold
edgecheck run (its progress lines: the two model runs; the rest is start-up, quantizing, comparing
and storing; on two or more cores the reference runs while the artifact is made, so its stage overlaps
the quantizing). Each side's wall time includes its interpreter's start and imports. Nothing here is a
test; figures vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precompile import compile_edgecheck  # noqa: E402
from detectors import yolov8n  # noqa: E402

from edgecheck.devices import cpu_model, load_profiles  # noqa: E402

SPEC = """edgecheck: 1
name: yolo
model: {{path: ../models/yolo.onnx}}
data:
  parity: ../models/parity.npz
  parity_samples: {samples}
compress: [int8-dynamic]
targets:
  host:
    budgets:
      parity: {{cosine: 0.5}}
"""

# what both scripts do first, as a user would: quantize, read the inputs, sessions at a thread count
JOB = '''\
import sys
import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import quantize_dynamic

model, data, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
quantize_dynamic(model, out)
with np.load(data) as archive:
    name = archive.files[0]
    x = archive[name]


def options(n):
    chosen = ort.SessionOptions()
    chosen.intra_op_num_threads = n
    chosen.inter_op_num_threads = 1
    return chosen

'''

# the job as a user would write it: same inputs, same sessions, same statistics (float64, per output)
BARE = JOB + '''
def run(path, n):
    session = ort.InferenceSession(path, options(n), providers=["CPUExecutionProvider"])
    outs = [session.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


reference, candidate = run(model, 1), run(out, threads)
for ref, cand in zip(reference, candidate):
    ref, cand = ref.astype(np.float64).ravel(), cand.astype(np.float64).ravel()
    diff = cand - ref
    ref_norm, cand_norm, diff_norm = (np.linalg.norm(v) for v in (ref, cand, diff))
    floor = max(1e-6 * np.abs(ref).max(), np.finfo(np.float64).tiny)
    stats = {"max_abs": np.abs(diff).max(), "mean_abs": np.abs(diff).mean(),
             "max_rel": (np.abs(diff) / np.maximum(np.abs(ref), floor)).max(), "rel_l2": diff_norm / ref_norm,
             "cosine": ref @ cand / ref_norm / cand_norm, "snr_db": 20 * np.log10(ref_norm / diff_norm)}
print("cosine", min(float(np.dot(a.ravel(), b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b))
                    for a, b in zip(reference, candidate)))
'''

POLYGRAPHY = JOB + '''
from polygraphy.backend.onnxrt import OnnxrtRunner
from polygraphy.comparator import Comparator, CompareFunc


def session(path, n):
    return lambda: ort.InferenceSession(path, options(n), providers=["CPUExecutionProvider"])


runners = [OnnxrtRunner(session(model, 1), name="fp32"), OnnxrtRunner(session(out, threads), name="int8")]
results = Comparator.run(runners, data_loader=[{name: x[i:i + 1]} for i in range(len(x))])
passed = Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=1e9, rtol=1e9))
print("polygraphy", bool(passed))
'''


def build_project(folder: Path, size: int, samples: int) -> Path:
    """The benchmark project: models/yolo.onnx, models/parity.npz, specs/yolo.yaml, pytest.ini."""
    model = yolov8n(size=size)
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:  # He-scaled random weights: zero weights would fold away
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.ndim >= 2:
            scaled = rng.standard_normal(array.shape) * np.sqrt(2.0 / array[0].size)
            init.CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), init.name))
    (folder / "models").mkdir(parents=True)
    (folder / "specs").mkdir()
    onnx.save(model, str(folder / "models" / "yolo.onnx"))
    name = model.graph.input[0].name
    np.savez(folder / "models" / "parity.npz", **{name: rng.random((samples, 3, size, size), dtype=np.float32)})
    (folder / "specs" / "yolo.yaml").write_text(SPEC.format(samples=samples))
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done.stdout


def stages(output: str) -> list[tuple[str, float]]:
    """The timed steps edgecheck's progress lines report ('outputs of ... … 3.5 s'), in order."""
    found = []
    for line in output.splitlines():
        match = re.match(r"(.+?) … (?:(\d+) min )?([\d.]+) s$", line.strip())
        if match:
            found.append((match.group(1), 60 * float(match.group(2) or 0) + float(match.group(3))))
    return found


def has_polygraphy(python: str) -> bool:
    return subprocess.run([python, "-c", "import polygraphy"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()

    python = sys.executable
    threads = load_profiles([])["host"].threads_for("onnxruntime")
    root = Path(tempfile.mkdtemp(prefix="bench-parity-"))
    try:
        project = build_project(root / "project", args.size, args.samples)
        (root / "bare.py").write_text(BARE)
        (root / "poly.py").write_text(POLYGRAPHY)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                         os.environ.get("PYTHONPATH")]))}
        env.pop("EDGECHECK_CACHE_DIR", None)
        model, data = project / "models" / "yolo.onnx", project / "models" / "parity.npz"
        pytest_command = [python, "-m", "pytest", "specs", "--edge-target=host", "-p", "no:cacheprovider", "-v"]
        sides: dict[str, list[float]] = {"edgecheck cold": [], "edgecheck warm": [], "bare script": []}
        poly = has_polygraphy(python)
        if poly:
            sides["Polygraphy"] = []
        print(compile_edgecheck(Path(__file__).resolve().parents[1]), flush=True)
        load_before = os.getloadavg()
        cold_output = ""
        print(f"model: YOLOv8n-sized, 1x3x{args.size}x{args.size}, {model.stat().st_size / 2**20:.1f} MiB; "
              f"{args.samples} parity inputs; int8-dynamic; reference 1 thread, INT8 {threads} threads", flush=True)
        for index in range(args.rounds):
            cache = root / f"cache-{index}"
            wall, cold_output = timed([*pytest_command, f"--edge-cache-dir={cache}"], project, env)
            sides["edgecheck cold"].append(wall)
            sides["edgecheck warm"].append(timed([*pytest_command, f"--edge-cache-dir={cache}"], project, env)[0])
            sides["bare script"].append(timed([python, str(root / "bare.py"), str(model), str(data),
                                               str(root / "bare.int8.onnx"), str(threads)], root, env)[0])
            if poly:
                sides["Polygraphy"].append(timed([python, str(root / "poly.py"), str(model), str(data),
                                                  str(root / "poly.int8.onnx"), str(threads)], root, env)[0])
            shutil.rmtree(cache, ignore_errors=True)
            print(f"round {index + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in sides.items()),
                  flush=True)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    bare_min, bare_median = min(sides["bare script"]), statistics.median(sides["bare script"])
    print()
    print(f"CPU: {cpu_model() or 'unknown'}, {os.cpu_count()} logical CPUs; load average "
          f"{' '.join(f'{v:.2f}' for v in load_before)} before, {' '.join(f'{v:.2f}' for v in load_after)} after")
    print(f"{'job':<16} {'min s':>7} {'median s':>9} {'min / bare':>11} {'median / bare':>14}")
    for name, walls in sides.items():
        low, mid = min(walls), statistics.median(walls)
        print(f"{name:<16} {low:>7.2f} {mid:>9.2f} {low / bare_min:>10.2f}x {mid / bare_median:>13.2f}x")
    if not poly:
        print("Polygraphy: not installed (pip install 'pytest-edgecheck[bench]')")
    print()
    print("edgecheck cold, the last round's stages (its progress lines):")
    steps = stages(cold_output)
    for name, seconds in steps:
        print(f"  {seconds:6.2f} s  {name}")
    print(f"  {sides['edgecheck cold'][-1] - sum(s for _, s in steps):6.2f} s  the rest: interpreter and pytest start, "
          "imports, collection, quantizing (unless beside the reference), comparing, storing outputs")


if __name__ == "__main__":
    main()
