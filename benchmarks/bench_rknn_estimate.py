"""How far rknn-toolkit2's own cycle estimate, scaled, is from Rockchip's published RK3588 figures.

edgecheck judges the latency of a .rknn artifact from the compiler's per-layer cycle table: total
cycles at the profile's `clock_ghz`, times a fitted `scale`, within a stated `error_factor`
(devices/profiles/rk3588.yaml, backends.rknn.compiler_estimate). This benchmark re-derives those
numbers: for each calibration point it builds the architecture (benchmarks/architectures.py, with
small random weights: all-zero weights make the toolkit fold the whole graph to constants), has
rknn-toolkit2 build it INT8 for rk3588 in its own environment, sums the cycles of the build log's
layer table, and prints them beside the stored cycles, the estimate with the stored scale, its
error, and the leave-one-out error (the scale fitted on the other points), which is the honest
figure for a model the fit has not seen. It then re-fits the scale and the error factor.

Needs the toolkit's environment (`edgecheck env create rknn`); each build takes a few seconds.

Run: python benchmarks/bench_rknn_estimate.py
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from architectures import ARCHITECTURES  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from edgecheck.analysis.calibrate import error_factor  # noqa: E402
from edgecheck.vendors.rknn.build_log import parse_build_log  # noqa: E402
from edgecheck.devices import load_profiles  # noqa: E402
from edgecheck.envs import find_env, run_env_env  # noqa: E402

DEVICE = "rk3588"

# Runs under the toolkit's python: argv = model.onnx, dataset.txt. The layer table is written by the
# toolkit's C library straight to fd 1, so the caller points stdout at a file.
BUILD = """
import sys
from rknn.api import RKNN
rknn = RKNN(verbose=True)
for step, call in (("config", lambda: rknn.config(target_platform=%r, mean_values=[[0, 0, 0]],
                                                   std_values=[[1, 1, 1]])),
                   ("load_onnx", lambda: rknn.load_onnx(model=sys.argv[1])),
                   ("build", lambda: rknn.build(do_quantization=True, dataset=sys.argv[2]))):
    if call() != 0:
        sys.stderr.write(step + " failed\\n")
        sys.exit(1)
rknn.release()
""" % DEVICE


def randomized(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    """The model with small random weights: float32 initializers of rank >= 2 and rank-1 biases. Scalars
    (Clip's min/max) and the other vectors (Resize scales, BatchNormalization's statistics) stay."""
    for i, init in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and (array.ndim >= 2 or (array.ndim == 1 and init.name.endswith("bias"))):
            values = (rng.standard_normal(array.shape) * 0.05).astype(np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, init.name))
    return model


def toolkit_cycles(python: Path, env: dict[str, str], name: str, shape: list[int], work: Path) -> tuple[int, float]:
    """The build log's total cycles for the architecture, and the seconds the build took."""
    rng = np.random.default_rng(0)
    folder = work / name
    folder.mkdir()
    model_path = folder / "model.onnx"
    onnx.save(randomized(ARCHITECTURES[name](shape[0], shape[-1]), rng), str(model_path))
    np.save(folder / "input.npy", rng.uniform(0, 1, shape).astype(np.float32))
    (folder / "dataset.txt").write_text(str(folder / "input.npy") + "\n")
    tmp = folder / "tmp"
    tmp.mkdir()
    log, err = folder / "stdout.txt", folder / "stderr.txt"
    started = time.perf_counter()
    with open(log, "wb") as out, open(err, "wb") as errors:
        done = subprocess.run([str(python), "-c", BUILD, str(model_path), str(folder / "dataset.txt")],
                              stdout=out, stderr=errors, cwd=tmp, env={**env, "TMPDIR": str(tmp)}, timeout=600)
    seconds = time.perf_counter() - started
    parsed = parse_build_log(log.read_text(errors="replace"))
    if done.returncode != 0 or not parsed.layers:
        tail = (log.read_text(errors="replace") + err.read_text(errors="replace")).splitlines()[-15:]
        raise RuntimeError(f"{name}: build failed (exit {done.returncode}, {len(parsed.layers)} layers):\n"
                           + "\n".join(tail))
    return parsed.cycles_total, seconds


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> int:
    started = time.perf_counter()
    tool = find_env("rknn")
    if tool is None or tool.python is None:
        print("rknn-toolkit2's environment is not there; create it with: edgecheck env create rknn")
        return 0
    estimate = load_profiles()[DEVICE].backends["rknn"].compiler_estimate
    points = estimate.points
    env = run_env_env(tool)

    measured, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="bench_rknn_") as tmp:
        for point in points:
            cycles, took = toolkit_cycles(tool.python, env, point.model, point.input, Path(tmp))
            measured.append(cycles)
            seconds.append(took)

    raw = [c / (estimate.clock_ghz * 1e6) for c in measured]  # ms at the clock
    ratios = [p.published_ms / r for p, r in zip(points, raw)]
    loo = []
    for i, (point, r) in enumerate(zip(points, raw)):
        others = [q for j, q in enumerate(ratios) if j != i]
        loo.append(r * geomean(others) / point.published_ms - 1 if others else None)

    rows = [("model", "input", "published ms", "cycles now", "cycles stored", "raw ms", "published/raw",
             "estimate ms", "error", "leave-one-out", "build s")]
    for point, cycles, r, ratio, held, took in zip(points, measured, raw, ratios, loo, seconds):
        est = r * estimate.scale
        rows.append((point.model, "x".join(map(str, point.input)), f"{point.published_ms:g}", str(cycles),
                     str(point.cycles), f"{r:.3f}", f"{ratio:.3f}", f"{est:.3f}",
                     f"{est / point.published_ms - 1:+.1%}", "-" if held is None else f"{held:+.1%}", f"{took:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    version = tool.tool_version or "rknn-toolkit2, version unknown"
    print(f"{DEVICE} rknn compiler estimate ({version}), clock {estimate.clock_ghz:g} GHz")
    print()
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print()

    refit = geomean(ratios)
    worst = max((abs(e) for e in loo if e is not None), default=None)
    print(f"scale: stored {estimate.scale:.4g}, re-fit {refit:.4g} (geometric mean of published/raw)")
    if worst is None:
        print("leave-one-out: needs two points or more")
    else:
        print(f"largest leave-one-out error: {worst:.1%}; error factor it implies {error_factor(loo)} "
              f"(stored {estimate.error_factor:g})")
    same = all(c == p.cycles for c, p in zip(measured, points))
    if same:
        print("cycles measured now match the stored ones for every point")
    else:
        differ = ", ".join(f"{p.model} {c} vs {p.cycles} ({c / p.cycles - 1:+.2%})"
                           for c, p in zip(measured, points) if c != p.cycles)
        print(f"cycles measured now DIFFER from the stored ones: {differ}")
    print(f"\n{len(points)} builds in {sum(seconds):.1f} s, {time.perf_counter() - started:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
