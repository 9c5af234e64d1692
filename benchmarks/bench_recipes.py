"""Per recipe: what it costs in accuracy and parity, and what it buys in size and latency.

Run: .venv/bin/python benchmarks/bench_recipes.py [--rounds 5]

On the shipped digits example (labelled: top-1 drop in points) and on a MobileNet-style model built
here (random weights: top-1 agreement with the original instead of accuracy). Latency is measured
side by side in this run with ONNX Runtime on this machine's CPU, batch 1, interleaved rounds, and
printed as a ratio to the original (above 1 = slower): INT8 is not always faster, and this table
says so when it is not. Nothing here is a test; figures vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import images, mobilenet_style  # noqa: E402

from edgecheck.artifacts import make_artifact  # noqa: E402
from edgecheck.cache import ArtifactCache  # noqa: E402
from edgecheck.compress import RecipeError  # noqa: E402
from edgecheck.model import inspect_onnx  # noqa: E402
from edgecheck.spec import RecipeStep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"


def step(recipe: str, **params) -> RecipeStep:
    return RecipeStep(recipe=recipe, params=params)


ENTRIES = {
    "fp16": [step("fp16")],
    "int8-dynamic": [step("int8-dynamic")],
    "int8-static": [step("int8-static")],
    "int8-static per-channel": [step("int8-static", per_channel=True)],
    "prune 0.5 (zeros)": [step("prune", sparsity=0.5)],
    "prune 0.25 channels": [step("prune", sparsity=0.25, structured=True)],
    "lowrank energy 0.9": [step("lowrank", energy=0.9)],
    "prune 0.25 channels + int8-static": [step("prune", sparsity=0.25, structured=True), step("int8-static")],
}


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(sess: ort.InferenceSession, name: str, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def latencies_ms(sessions: dict[str, ort.InferenceSession], name: str, sample: np.ndarray, rounds: int,
                 runs: int = 30) -> dict[str, float]:
    """Median per-inference time of each session, measured in interleaved rounds so drift hits all."""
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for sess in sessions.values():  # warm-up
        for _ in range(5):
            sess.run(None, {name: sample})
    for _ in range(rounds):
        for key, sess in sessions.items():
            for _ in range(runs):
                start = time.perf_counter()
                sess.run(None, {name: sample})
                times[key].append((time.perf_counter() - start) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def bench(title: str, model: Path, input_name: str, x: np.ndarray, labels: np.ndarray | None,
          calibration: Path, rounds: int, threads: int) -> None:
    cache = ArtifactCache(None)
    original = inspect_onnx(model)
    reference = run_all(session(model, threads), input_name, x)
    truth = labels if labels is not None else reference.argmax(1)
    base_acc = float((reference.argmax(1) == truth).mean() * 100)
    rows, paths = [], {"none": model}
    build_s: dict[str, float] = {}
    for label, steps in ENTRIES.items():
        start = time.perf_counter()
        try:
            made = make_artifact(model, tuple(steps), calibration, cache)
        except RecipeError as exc:
            rows.append((label, f"not applicable: {exc}"))
            continue
        build_s[label] = time.perf_counter() - start
        paths[label] = made.artifact.path
    sessions = {k: session(p, threads) for k, p in paths.items()}
    latency = latencies_ms(sessions, input_name, x[:1], rounds)
    print(f"\n## {title}: {original.parameters:,} parameters, {original.size_bytes:,} B, "
          f"{'top-1 %.2f %%' % base_acc if labels is not None else 'top-1 agreement vs itself 100 %'}; "
          f"original latency {latency['none']:.3f} ms (batch 1, {threads} threads)")
    quality = "top-1 drop (pts)" if labels is not None else "top-1 agreement"
    print(f"| recipe | {quality} | rel_l2 | cosine | size | size ratio | parameters | latency ratio | build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, path in paths.items():
        if label == "none":
            continue
        out = run_all(sessions[label], input_name, x)
        diff = np.linalg.norm(out - reference) / np.linalg.norm(reference)
        cosine = float((out * reference).sum() / (np.linalg.norm(out) * np.linalg.norm(reference)))
        acc = float((out.argmax(1) == truth).mean() * 100)
        info = inspect_onnx(path)
        q = f"{base_acc - acc:.2f}" if labels is not None else f"{acc:.1f} %"
        print(f"| {label} | {q} | {diff:.4f} | {cosine:.5f} | {info.size_bytes:,} B | "
              f"{original.size_bytes / info.size_bytes:.2f}x | {info.parameters:,} | "
              f"{latency[label] / latency['none']:.2f}x | {build_s[label]:.2f} |")
    for label, reason in rows:
        print(f"| {label} | {reason} |")
    cache.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs")
    with np.load(DIGITS / "test.npz") as data:
        x, y = data["input"], data["labels"]
    bench("digits CNN (examples/digits, 540 held-out digits)", DIGITS / "digits.onnx", "input", x, y,
          DIGITS / "calibration.npz", args.rounds, args.threads)
    with tempfile.TemporaryDirectory() as folder:
        model = mobilenet_style(Path(folder) / "mobilenet_style.onnx")
        calibration = Path(folder) / "calibration.npz"
        np.savez(calibration, image=images(64, seed=2))
        bench("MobileNet-style (width 0.5, 96x96, random weights, 256 inputs)", model, "image",
              images(256, seed=3), None, calibration, args.rounds, args.threads)


if __name__ == "__main__":
    main()
