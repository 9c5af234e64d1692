"""How far the latency of a .rknn, judged on rknn-toolkit2's own build log, is from Rockchip's published RK3588
figures, on models it was fitted on and on models it never saw.

edgecheck judges a .rknn artifact's latency from the compiler's layer table (edgecheck/vendors/rknn/compiler_model.py):
scale x the total cycles at the NPU clock, plus a cost per MiB the table says the NPU layers move and per
million sigmoid-like activations (the cycles leave both out), plus the CPU layers by the device CPU's cost
model, within a stated error factor (devices/profiles/rk3588.yaml, backends.rknn.compiler_estimate). This
benchmark re-derives all of it: for each published point it builds the architecture (benchmarks/architectures.py,
small random weights: all-zero weights make the toolkit fold the graph to constants) with rknn-toolkit2 INT8 for
rk3588 in its own environment, reads the build log, and prints per row: published figure, the features now and
as stored, the stored model's estimate, error, leave-one-out (fit rows), whether the figure lies in the stated
range, and the verdict a budget at the published figure would get. Then it compares, out of sample, the single
scale the profile used before with the per-layer terms, re-fits, and summarises the validation rows.

Needs the toolkit's environment (`edgecheck env create rknn`); each build takes a few seconds.
`--stored` skips the builds and uses the features stored with each point; `--device=NAME` benchmarks another chip.

Run: python benchmarks/bench_rknn_estimate.py [--stored] [--device=rk3566]  (rk3588 by default; every profile with a
compiler_estimate: rk3588, rk3566, rk3568, rk3562)
"""

from __future__ import annotations

import math
import statistics
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
from validation import summary  # noqa: E402

from edgecheck.analysis.calibrate import error_factor  # noqa: E402
from edgecheck.devices import load_profiles  # noqa: E402
from edgecheck.envs import find_env, run_env_env  # noqa: E402
from edgecheck.vendors.rknn import compiler_model as estimate  # noqa: E402
from edgecheck.vendors.rknn.build_log import BuildLog, parse_build_log  # noqa: E402
from edgecheck.vendors.rknn.latency import cpu_cost_model, cpu_layer_ms  # noqa: E402

DEVICE = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--device=")), "rk3588")
CANDIDATES = {"single scale (before issue 17)": (True, False, False), "cycles + bytes moved": (True, True, False),
              "cycles + activations": (True, False, True), "cycles + bytes + activations": (True, True, True)}

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


def build_log(python: Path, env: dict[str, str], name: str, shape: list[int], work: Path) -> tuple[BuildLog, float]:
    """The toolkit's build log of the architecture, and the seconds the build took."""
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
                              stdout=out, stderr=errors, cwd=tmp, env={**env, "TMPDIR": str(tmp)}, timeout=1800)
    seconds = time.perf_counter() - started
    parsed = parse_build_log(log.read_text(errors="replace"))
    if done.returncode != 0 or not parsed.layers:
        tail = (log.read_text(errors="replace") + err.read_text(errors="replace")).splitlines()[-15:]
        raise RuntimeError(f"{name}: build failed (exit {done.returncode}, {len(parsed.layers)} layers):\n"
                           + "\n".join(tail))
    return parsed, seconds


def table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def main() -> int:
    started = time.perf_counter()
    profile = load_profiles()[DEVICE]
    model = profile.backends["rknn"].options.compiler_estimate
    cpu_model = cpu_cost_model(profile)
    points = model.points
    found: list[estimate.CompilerFeatures] = []
    cpu_ms: list[float] = []
    seconds: list[float] = []
    version = "stored features"
    if "--stored" in sys.argv:
        for point in points:
            found.append(estimate.CompilerFeatures(point.cycles / (model.clock_ghz * 1e6), point.rw_mb,
                                                   point.activation_melements))
            cpu_ms.append(point.cpu_ms)
    else:
        tool = find_env("rknn")
        if tool is None or tool.python is None:
            print("rknn-toolkit2's environment is not there; create it with: edgecheck env create rknn "
                  "(or run with --stored)")
            return 0
        version = tool.tool_version or "rknn-toolkit2, version unknown"
        env = run_env_env(tool)
        with tempfile.TemporaryDirectory(prefix="bench_rknn_") as tmp:
            for point in points:
                log, took = build_log(tool.python, env, point.model, point.input, Path(tmp))
                found.append(estimate.features(log, model.clock_ghz))
                cpu_ms.append(sum(cpu_layer_ms(layer, cpu_model) or 0.0 for layer in log.cpu_layers())
                              if cpu_model else 0.0)
                seconds.append(took)

    fit_rows = [(f, p.published_ms - c) for f, c, p in zip(found, cpu_ms, points) if p.role == "fit"]
    loo = estimate.leave_one_out(fit_rows)
    loo_of = dict(zip([p.model for p in points if p.role == "fit"], loo))
    print(f"{DEVICE} rknn compiler estimate ({version}), clock {model.clock_ghz:g} GHz; stored coefficients "
          f"{model.scale:.4g} x cycles ms + {model.rw_ms_per_mb:.4g} ms/MiB + {model.activation_ms_per_melement:.4g} "
          f"ms/M activations, error factor {model.error_factor:g}\n")
    rows = [("model", "role", "published ms", "cycles now", "stored", "MiB moved", "M activations", "CPU ms",
             "estimate ms", "error", "leave-one-out", "stated range", "inside", "budget = published")]
    validation = []
    for point, f, c in zip(points, found, cpu_ms):
        est = estimate.predict(model.coefficients, f) + c
        low, high = est / model.error_factor, est * model.error_factor
        inside = low <= point.published_ms <= high
        verdict = "pass" if high <= point.published_ms else ("fail" if low > point.published_ms else "inconclusive")
        held = loo_of.get(point.model)
        rows.append((point.model, point.role, f"{point.published_ms:.4g}", f"{round(f.cycles_ms * model.clock_ghz * 1e6)}",
                     str(point.cycles), f"{f.rw_mb:.1f}", f"{f.activation_melements:.2f}", f"{c:.3f}", f"{est:.4g}",
                     f"{est / point.published_ms - 1:+.1%}", "-" if held is None else f"{held:+.1%}",
                     f"{low:.3g}..{high:.3g}", "yes" if inside else "NO", verdict))
        if point.role == "validate":
            validation.append((abs(est / point.published_ms - 1), inside, verdict))
    table(rows)

    print("\nCandidate models, fitted on the fit rows only (least squares on relative error, non-negative):")
    candidates = [("model", "coefficients", "leave-one-out median", "largest", "error factor", "validation median",
                   "largest", "coverage")]
    validate_rows = [(f, p.published_ms - c) for f, c, p in zip(found, cpu_ms, points) if p.role == "validate"]
    worst_held = {}
    for name, use in CANDIDATES.items():
        coefficients = estimate.fit(fit_rows, use)
        held = estimate.leave_one_out(fit_rows, use)
        worst_held[name] = (max(abs(e) for e in held), coefficients)
        factor = error_factor(held)
        errors = [estimate.predict(coefficients, f) / ms - 1 for f, ms in validate_rows]
        covered = sum(1 / factor <= 1 + e <= factor for e in errors)
        candidates.append((name, ", ".join(f"{c:.4g}" for c in coefficients),
                           f"{statistics.median(abs(e) for e in held):.1%}", f"{max(abs(e) for e in held):.1%}",
                           f"{factor:g}", f"{statistics.median(abs(e) for e in errors):.1%}",
                           f"{max(abs(e) for e in errors):.1%}", f"{covered}/{len(errors)}"))
    table(candidates)
    best = min(worst_held, key=lambda name: worst_held[name][0])
    same = all(math.isclose(a, b, rel_tol=0.02, abs_tol=1e-6) for a, b in zip(worst_held[best][1], model.coefficients))
    stored = "is" if same else "is NOT"
    print(f"  smallest largest leave-one-out miss on the fit rows: {best}; the stored model {stored} that one")

    print(f"\nstored model, {summary(validation)}")
    print(f"leave-one-out on the fit rows: error factor {error_factor(loo)} (stored {model.error_factor:g})")
    differ = [f"{p.model} {round(f.cycles_ms * model.clock_ghz * 1e6)} vs {p.cycles}" for p, f in zip(points, found)
              if round(f.cycles_ms * model.clock_ghz * 1e6) != p.cycles]
    if "--stored" in sys.argv:
        print("cycles not rebuilt (--stored): the stored features were used")
    else:
        print("cycles measured now " + ("DIFFER from the stored ones: " + ", ".join(differ) if differ
                                        else "match the stored ones for every point"))
    if seconds:
        print(f"\n{len(points)} builds in {sum(seconds):.1f} s, {time.perf_counter() - started:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
