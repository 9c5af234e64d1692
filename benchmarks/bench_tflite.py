"""TFLite (LiteRT, XNNPACK) against ONNX Runtime on this host, per artifact: accuracy, parity against
the ONNX original, size and latency, measured side by side in one run.

Run: .venv/bin/python benchmarks/bench_tflite.py [--rounds 5] [--threads 1]
(needs `edgecheck env create onnx2tf` for the conversions; without it only the ONNX rows print)

On the shipped digits example and on a MobileNet-style model built here (random weights: top-1
agreement with the original instead of accuracy). Every artifact is made by edgecheck's own
recipes and run by edgecheck's own runners (the tflite runner transposes NCHW feeds to NHWC, as in
a spec run), in this process, batch 1, interleaved rounds so that drift hits all alike. Latency is
printed in ms and as a ratio to ONNX Runtime FP32 (above 1 = slower). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import images, mobilenet_style  # noqa: E402

from edgecheck.artifacts import make_artifact  # noqa: E402
from edgecheck.backends import RunOptions, get_backend  # noqa: E402
from edgecheck.cache import ArtifactCache  # noqa: E402
from edgecheck.compress import RecipeError  # noqa: E402
from edgecheck.model import inspect_model  # noqa: E402
from edgecheck.spec import RecipeStep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"

# (label, backend, steps)
ENTRIES = [
    ("onnx fp32", "onnxruntime", ()),
    ("onnx int8-static", "onnxruntime", ("int8-static",)),
    ("tflite fp32", "tflite", ("tflite-fp32",)),
    ("tflite fp16", "tflite", ("tflite-fp16",)),
    ("tflite int8-dynamic", "tflite", ("tflite-int8-dynamic",)),
    ("tflite int8-static (onnx2tf)", "tflite", ("tflite-int8-static",)),
    ("tflite int8-static (ai-edge-quantizer)", "tflite", ("tflite-fp32", "tflite-int8-static")),
]


def outputs(runner, name: str, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([runner.infer({name: x[i:i + batch]})[runner.output_names[0]]
                           for i in range(0, len(x), batch)])


def bench(title: str, model: Path, name: str, x: np.ndarray, labels: np.ndarray | None, calibration: Path,
          rounds: int, threads: int, cache: ArtifactCache) -> None:
    runners, skipped = {}, []
    for label, backend, steps in ENTRIES:
        try:
            made = make_artifact(model, tuple(RecipeStep(recipe=s) for s in steps), calibration, cache)
        except RecipeError as exc:
            skipped.append((label, str(exc)))
            continue
        runners[label] = (get_backend(backend).load(made.artifact.path, RunOptions(threads=threads)),
                          inspect_model(made.artifact.path).size_bytes)
    reference = outputs(runners["onnx fp32"][0], name, x)
    truth = labels if labels is not None else reference.argmax(1)
    base = float((reference.argmax(1) == truth).mean() * 100)
    calls = {label: runner.bind({name: x[:1]}) for label, (runner, _) in runners.items()}
    times: dict[str, list[float]] = {label: [] for label in calls}
    for call in calls.values():
        for _ in range(10):
            call()
    for _ in range(rounds):
        for label, call in calls.items():
            for _ in range(30):
                start = time.perf_counter()
                call()
                times[label].append((time.perf_counter() - start) * 1e3)
    latency = {label: float(np.median(t)) for label, t in times.items()}
    quality = "top-1 drop (pts)" if labels is not None else "top-1 agreement"
    print(f"\n## {title}: original top-1 {base:.2f} %; batch 1, {threads} thread(s), median of {rounds}x30 runs")
    print(f"| artifact | backend | {quality} | rel_l2 vs ONNX | size | latency ms | vs onnx fp32 |")
    print("|---|---|---|---|---|---|---|")
    for label, (runner, size) in runners.items():
        out = outputs(runner, name, x)
        rel = np.linalg.norm(out - reference) / np.linalg.norm(reference)
        top1 = float((out.argmax(1) == truth).mean() * 100)
        q = f"{base - top1:.2f}" if labels is not None else f"{top1:.1f} %"
        print(f"| {label} | {runner.backend} | {q} | {rel:.2e} | {size:,} B | {latency[label]:.4f} | "
              f"{latency[label] / latency['onnx fp32']:.2f}x |")
    for label, reason in skipped:
        print(f"| {label} | not made: {reason} |")
    for runner, _ in runners.values():
        runner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import onnxruntime
    from importlib.metadata import version

    print(f"onnxruntime {onnxruntime.__version__}, ai-edge-litert {version('ai-edge-litert')}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        cache = ArtifactCache(Path(folder) / "cache")
        with np.load(DIGITS / "test.npz") as data:
            x, y = data["input"], data["labels"]
        bench("digits CNN (examples/digits, 540 held-out digits)", DIGITS / "digits.onnx", "input", x, y,
              DIGITS / "calibration.npz", args.rounds, args.threads, cache)
        model = mobilenet_style(Path(folder) / "mobilenet_style.onnx")
        calibration = Path(folder) / "calibration.npz"
        np.savez(calibration, image=images(64, seed=2))
        bench("MobileNet-style (width 0.5, 96x96, random weights, 128 inputs)", model, "image",
              images(128, seed=3), None, calibration, args.rounds, args.threads, cache)
        cache.close()


if __name__ == "__main__":
    main()
