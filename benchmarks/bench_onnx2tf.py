"""How many ONNX models of the kinds real exporters write convert to TFLite, before and after the
tflite recipes' preparation (input shapes fixed, graph simplified, the batch fixed where a dynamic one
fails), and how close each converted model is to ONNX Runtime.

Run: .venv/bin/python benchmarks/bench_onnx2tf.py [--recipe tflite-fp32]
(needs `edgecheck env create onnx2tf`)

The models are built by tests/convert_builders.py: a YOLOv8-style head with DFL, anchors from shapes
and a dynamic height and width; a Paddle-style graph with Constant-node weights and dynamic
dimensions; a voice-activity-style model whose If branches read outer Constant nodes. "before" is the
recipe with `simplify: false` (onnx2tf on the model as exported), "after" the recipe's defaults. Each
row prints the outcome (converted, with rel_l2 against ONNX Runtime on one sample, or the failure as a
user reads it). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from convert_builders import BUILDERS  # noqa: E402

from edgecheck.compress import RecipeContext, RecipeError, get_recipe  # noqa: E402

# one sample per model input: the shape calibration data would give
SAMPLES = {
    "yolo-dfl": {"images": (3, 64, 96)},
    "paddle-constant": {"x": (3, 32, 48)},
    "if-branch": None,  # static shapes: no calibration data
}
IF_FEED = {"input": np.random.default_rng(0).uniform(-1, 1, (1, 64)).astype(np.float32),
           "state": np.zeros((2, 1, 16), np.float32), "sr": np.array(16000, np.int64)}


def _feed(kind: str) -> dict[str, np.ndarray]:
    shapes = SAMPLES[kind]
    if shapes is None:
        return IF_FEED
    rng = np.random.default_rng(1)
    return {name: rng.uniform(0, 1, (1, *shape)).astype(np.float32) for name, shape in shapes.items()}


def _compare(model: Path, artifact: Path, feed: dict[str, np.ndarray]) -> str:
    import onnxruntime

    from edgecheck.backends import RunOptions, get_backend

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    runner = get_backend("tflite").load(artifact, RunOptions())
    try:
        got = runner.infer(feed)
    finally:
        runner.close()
    errors = [np.linalg.norm(got[n] - e) / max(np.linalg.norm(e), 1e-12) for n, e in expected.items()]
    return f"max rel_l2 {max(errors):.1e}"


def run(kind: str, recipe: str, params: dict, folder: Path) -> tuple[bool, str]:
    model = BUILDERS[kind](folder / f"{kind}.onnx")
    calibration = None
    if SAMPLES[kind] is not None:
        calibration = folder / f"{kind}-calibration.npz"
        rng = np.random.default_rng(2)
        np.savez(calibration, **{n: rng.uniform(0, 1, (4, *s)).astype(np.float32) for n, s in SAMPLES[kind].items()})
    out = folder / f"{kind}-{'-'.join(map(str, params.values())) or 'defaults'}"
    out.mkdir()
    chosen = get_recipe(recipe)
    started = time.perf_counter()
    try:
        made = chosen.apply(model, chosen.parse_params(params), RecipeContext(calibration=calibration, out_dir=out))
    except RecipeError as exc:
        return False, f"not converted ({time.perf_counter() - started:.0f} s): {exc}"
    notes = f"converted ({time.perf_counter() - started:.0f} s; {made.notes.get('prepared', 'as exported')})"
    try:  # a conversion that cannot run a real-sized sample is no conversion
        return True, f"{notes}; {_compare(model, made.path, _feed(kind))}"
    except Exception as exc:
        return False, f"{notes}, but it does not run a {kind} sample: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="tflite-fp32")
    parser.add_argument("--models", nargs="*", default=list(BUILDERS))
    args = parser.parse_args()
    counts = {"before": 0, "after": 0}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in args.models:
            for label, params in (("before", {"simplify": False}), ("after", {})):
                ok, said = run(kind, args.recipe, params, Path(scratch))
                counts[label] += ok
                print(f"| {kind} | {label} | {said} |", flush=True)
    total = len(args.models)
    print(f"\n{args.recipe}: {counts['before']} of {total} converted before, {counts['after']} of {total} after")


if __name__ == "__main__":
    main()
