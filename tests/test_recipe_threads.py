"""Under pytest-xdist, a recipe's own runtime session (int8-static's calibration) runs on the worker's share of
the host's cores, not on ONNX Runtime's default of a spinning thread per core in every worker at once; the
artifact is the same bytes either way."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import CalibraterBase

from edgecheck.compress import RecipeContext, get_recipe
from edgecheck.compress.quantize import calibration_threads
from edgecheck.processes import cores_per_worker


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize(("workers", "expected"), [
    (0, None), (1, None), (2, lambda cpus: max(1, cpus // 2)), (1000, lambda cpus: 1),
])
def test_the_share_is_the_cores_divided_among_the_xdist_workers(workers, expected):
    want = expected(_cpus()) if callable(expected) else expected
    assert cores_per_worker(workers) == want


# a recipe that says which thread count its context carried (in the worker that ran it), and changes the weights
RECORDING_RECIPE = """
import os
from pathlib import Path

import onnx
from onnx import numpy_helper

from edgecheck.compress import Artifact, artifact_path, register_recipe, unregister_recipe

ROOT = Path(__file__).parent


def pytest_unconfigure(config):
    unregister_recipe("threads-recipe")


@register_recipe("threads-recipe")
def threads_recipe(model, params, context):
    (ROOT / f"threads-{os.getpid()}.txt").write_text(repr(context.threads))
    proto = onnx.load(str(model))
    for tensor in proto.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 0.5, tensor.name))
    out = artifact_path(model, "threads-recipe", context)
    onnx.save(proto, str(out))
    return Artifact(out, "threads-recipe", {"did": "halved the weights"})
"""
RECORDING_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
compress: [threads-recipe]
targets:
  host:
    budgets:
      size_mb: 10
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_session_gives_its_recipes_the_workers_share(pytester, monkeypatch, workers):
    """From the session through its worker to the recipe: under -n 2 the share, alone ONNX Runtime's default, even
    where PYTEST_XDIST_WORKER_COUNT came from a pytest run around this one (as it does in this very suite)."""
    from conftest import make_classifier

    (pytester.path / "models").mkdir()
    (pytester.path / "specs").mkdir()
    make_classifier(pytester.path / "models" / "clf.onnx")
    (pytester.path / "specs" / "clf.yaml").write_text(RECORDING_SPEC.lstrip())
    pytester.makeconftest(RECORDING_RECIPE)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "7")  # inherited from around: not this session's
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "--edge-no-cache", "-n", workers)
    result.assert_outcomes(passed=2)  # the size of the original and of the recipe's artifact
    said = {path.read_text() for path in pytester.path.glob("threads-*.txt")}
    assert said == ({"None"} if workers == "0" else {repr(max(1, _cpus() // 2))}), said


def _model(path):
    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1"),
               numpy_helper.from_array(rng.normal(size=(16, 4)).astype(np.float32), "w2")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    np.savez(path.with_name("calibration.npz"), x=rng.uniform(-1, 1, size=(16, 8)).astype(np.float32))
    return path


@pytest.mark.parametrize("method", ["minmax", "percentile"])  # (entropy: minmax's ranges in onnxruntime 1.32)
def test_calibration_runs_on_the_share_and_makes_the_same_bytes(tmp_path, monkeypatch, method):
    model = _model(tmp_path / "mlp.onnx")
    recipe = get_recipe("int8-static")
    made = {}
    seen: list[int] = []
    real_session = onnxruntime.InferenceSession

    def recording_session(path, sess_options=None, *args, **kwargs):  # the real session, its thread count noted
        seen.append(sess_options.intra_op_num_threads if sess_options is not None else -1)
        return real_session(path, sess_options, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording_session)
    for threads in (None, 1, 2):
        out = tmp_path / f"out-{threads}"
        out.mkdir()
        seen.clear()
        context = RecipeContext(calibration=tmp_path / "calibration.npz", out_dir=out, threads=threads)
        artifact = recipe.apply(model, recipe.parse_params({"method": method}), context)
        made[threads] = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
        if threads is None:  # onnxruntime's own options: its default of 0 (a thread per physical core)
            assert 0 in seen, seen
        else:
            assert seen and set(seen) == {threads}, seen
    assert made[None] == made[1] == made[2]


def test_the_calibrator_is_left_as_it_was_after_the_block_even_when_it_fails():
    original = CalibraterBase.create_inference_session
    with calibration_threads(1):
        assert CalibraterBase.create_inference_session is not original
    assert CalibraterBase.create_inference_session is original
    with pytest.raises(RuntimeError), calibration_threads(2):
        raise RuntimeError("quantize_static failed")
    assert CalibraterBase.create_inference_session is original
    with calibration_threads(None):  # no share (not under xdist): onnxruntime's own default
        assert CalibraterBase.create_inference_session is original
