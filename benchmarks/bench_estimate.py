"""How far the latency estimator is from published device figures.

For each calibration point in the device profiles (and the article's Jetson Nano YOLOv5s figures,
which are not used for calibration) it builds the architecture (benchmarks/architectures.py: the
graph, not the weights), estimates its latency with the stored cost model, and prints the estimate
against the published figure, the error, and the leave-one-out error (a fit on the other points),
which is the honest figure for a model the fit has not seen. It also re-fits the stored
efficiencies, so a profile edited by hand shows up here.

Run: python benchmarks/bench_estimate.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from architectures import ARCHITECTURES  # noqa: E402

from edgecheck.analysis.calibrate import error_factor, fit, leave_one_out, predict_ms  # noqa: E402
from edgecheck.analysis.costs import ModelFacts, model_facts  # noqa: E402
from edgecheck.analysis.graph import analyse  # noqa: E402
from edgecheck.devices import load_profiles  # noqa: E402

# The article's Jetson Nano table (field notes): YOLOv5s, input size and precision not stated.
NANO_ARTICLE = {"tensorrt": 43.0, "onnxruntime": 72.0, "tflite": 85.0}


def facts_for(name: str, shape: list[int], cache: dict) -> ModelFacts:
    key = (name, tuple(shape))
    if key not in cache:
        model = ARCHITECTURES[name](shape[0], shape[-1])
        cache[key] = model_facts(analyse(model))
    return cache[key]


def main() -> int:
    started = time.perf_counter()
    profiles = load_profiles()
    cache: dict = {}
    rows = [("device", "backend", "precision", "model", "published ms", "estimate ms", "error", "leave-one-out")]
    for device, profile in profiles.items():
        for backend, support in profile.backends.items():
            for precision, model in support.estimate.items():
                if not model.points:
                    continue
                points = [(facts_for(p.model, p.input, cache), p.published_ms) for p in model.points]
                held_out = leave_one_out(points, model, precision)
                for point, (facts, published), loo in zip(model.points, points, held_out):
                    estimate = predict_ms(facts, model, precision)
                    rows.append((device, backend, precision, f"{point.model} {'x'.join(map(str, point.input))}",
                                 f"{published:.3g}", f"{estimate:.3g}", f"{estimate / published - 1:+.0%}",
                                 "-" if loo is None else f"{loo:+.0%}"))
                refit = fit(points, model, precision)
                print(f"{device} {backend} {precision}: stored compute_efficiency {model.compute_efficiency:.4g}, "
                      f"node_overhead_us {model.node_overhead_us:.4g}; re-fit {refit.compute_efficiency:.4g}, "
                      f"{refit.node_overhead_us:.4g}; stated error factor {model.error_factor} "
                      f"(leave-one-out gives {error_factor(held_out)})")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))

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
          "and TFLite figures were not CPU runs at 640x640, and TensorRT's at 640 would need ~90 % of the FP16 "
          "peak; so they calibrate nothing here.")
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
