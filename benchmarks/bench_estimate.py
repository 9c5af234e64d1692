"""How far the latency cost models are from published device figures, on models they were fitted on and on
models they never saw.

For every cost model in the device profiles that has published points, it builds each point's architecture
(benchmarks/architectures.py: the graph, not the weights) and prints one row per point: published figure,
the stored model's estimate, its error, whether the figure lies inside the stated range, the verdict a
budget equal to the published figure would get (a "pass" there means the whole range sits below the real
latency: the estimate would ship a model the board misses), and whether the point was fitted on or only
validated on. Then, over the validation rows only: median absolute error, coverage of the stated range and
the passes at the published figure. It re-fits the model on its fit rows (so a hand-edited profile shows
up here) and prints the leave-one-out errors the stated error factor comes from.

Run: python benchmarks/bench_estimate.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from architectures import ARCHITECTURES  # noqa: E402
from validation import summary  # noqa: E402

from edgecheck.analysis.calibrate import BANDWIDTH_GRID, COMPUTE_GRID, error_factor, fit, leave_one_out, predict_ms  # noqa: E402,E501
from edgecheck.analysis.costs import ModelFacts, model_facts  # noqa: E402
from edgecheck.analysis.graph import analyse  # noqa: E402
from edgecheck.analysis.estimate import estimate_latency  # noqa: E402
from edgecheck.devices import CostModel, DeviceProfile, load_profiles  # noqa: E402

# The article's Jetson Nano table (field notes): YOLOv5s, input size and precision not stated.
NANO_ARTICLE = {"tensorrt": 43.0, "onnxruntime": 72.0, "tflite": 85.0}


def facts_for(name: str, shape: list[int], cache: dict) -> ModelFacts:
    key = (name, tuple(shape))
    if key not in cache:
        cache[key] = model_facts(analyse(ARCHITECTURES[name](shape[0], shape[-1])))
    return cache[key]


def verdict_at(estimate: float, low: float, high: float, budget: float) -> str:
    return "pass" if high <= budget else ("fail" if low > budget else "inconclusive")


def table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def report(profile: DeviceProfile, backend: str, precision: str, model: CostModel, cache: dict) -> None:
    device = profile.name
    print(f"\n{device} {backend} {precision} cost model ({model.calibration})")
    fitted = [(facts_for(p.model, p.input, cache), p.published_ms) for p in model.fitted]
    loo = leave_one_out(fitted, model, precision)
    loo_by_model = {p.model: e for p, e in zip(model.fitted, loo)}
    rows = [("model", "input", "role", "published ms", "estimate ms", "error", "leave-one-out", "stated range",
             "inside", "budget = published")]
    validation: list[tuple[float, bool, str]] = []
    for point in model.points:
        judged = estimate_latency(facts_for(point.model, point.input, cache), profile, backend, precision)
        estimate, low, high = judged.ms, judged.low_ms, judged.high_ms  # as a check states it, guards included
        error = estimate / point.published_ms - 1
        inside = low <= point.published_ms <= high
        verdict = verdict_at(estimate, low, high, point.published_ms)
        held = loo_by_model.get(point.model) if point.role == "fit" else None
        rows.append((point.model, "x".join(map(str, point.input)), point.role, f"{point.published_ms:.4g}",
                     f"{estimate:.4g}", f"{error:+.1%}", "-" if held is None else f"{held:+.1%}",
                     f"{low:.3g}..{high:.3g}", "yes" if inside else "NO", verdict))
        if point.role == "validate":
            validation.append((abs(error), inside, verdict))
    table(rows)
    refit = fit(fitted, model, precision)
    edges = [name for name, value, grid in (("compute_efficiency", refit.compute_efficiency, COMPUTE_GRID),
                                              ("bandwidth_efficiency", refit.bandwidth_efficiency, BANDWIDTH_GRID))
             if value in (grid[0], grid[-1])]
    print(f"  stored: compute_efficiency {model.compute_efficiency:.4g}, node_overhead_us {model.node_overhead_us:.4g}, "
          f"bandwidth_efficiency {model.bandwidth_efficiency:g}, activation_ns {model.activation_ns:.4g}, "
          f"channel_align {model.channel_align}, error_factor {model.error_factor:g}")
    print(f"  re-fit on the {len(fitted)} fit rows: {refit.compute_efficiency:.4g}, {refit.node_overhead_us:.4g}, "
          f"{refit.bandwidth_efficiency:g}, {refit.activation_ns:.4g}; leave-one-out gives error factor "
          f"{error_factor(loo)} (largest miss {max(abs(e) for e in loo if e is not None):.1%}, median "
          f"{statistics.median(abs(e) for e in loo if e is not None):.1%})")
    if edges:
        print(f"  note: the fit lands on the edge of its grid for {', '.join(edges)}: the data do not pin it down "
              "(at bandwidth efficiency 1.0 the memory side of the roofline is effectively unused)")
    if validation:
        print("  " + summary(validation))
    else:
        print("  validation: no rows held out")


def main() -> int:
    started = time.perf_counter()
    profiles = load_profiles()
    cache: dict = {}
    for device, profile in profiles.items():
        for backend, support in profile.backends.items():
            for precision, model in support.estimate.items():
                if model.points:
                    report(profile, backend, precision, model, cache)
    uncalibrated = sorted({f"{d} {b} {p}" for d, prof in profiles.items() for b, s in prof.backends.items()
                           for p, m in s.estimate.items() if not m.calibrated})
    print(f"\nUncalibrated (no published points: their estimates judge no budget): {', '.join(uncalibrated)}")

    print("\nThe article's Jetson Nano YOLOv5s figures (not used for calibration):")
    nano = profiles["jetson-nano"]
    for size in (640, 320):
        facts = facts_for("yolov5s", [1, 3, size, size], cache)
        for backend, published in NANO_ARTICLE.items():
            support = nano.backends[backend]
            precision = "fp16" if "fp16" in support.estimate and backend == "tensorrt" else "fp32"
            model = support.estimate[precision]
            implied = facts.flops / (model.peak_tops * 1e12) / (published / 1e3)
            estimate = predict_ms(facts, model, precision)
            print(f"  yolov5s {size}: {backend} {precision} published {published:g} ms, uncalibrated estimate "
                  f"{estimate:.3g} ms ({estimate / published - 1:+.0%}); the published figure needs "
                  f"{implied:.0%} of the {model.unit.upper()} {precision} peak ({model.peak_tops:g} TOPS)")
    print("  -> above 100 % the figure cannot be that backend on that unit at that size: the article's ONNX Runtime "
          "and TFLite figures were not CPU runs at 640x640, and TensorRT's at 640 would need over 80 % of the "
          "FP16 peak; so they calibrate nothing here.")
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
