"""The TFLite backend and a spec whose model is a .tflite file, as users run them: real .tflite files
built in the tests with LiteRT's own schema (tests/tflite_builders.py), run by LiteRT, judged in
pytester sessions. The onnx2tf conversions are in test_tflite_convert.py (they need its environment)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert: pip install 'pytest-edgecheck[tflite]'")

from conftest import HANG_GUARD_S, junit_properties  # noqa: E402
from tflite_builders import FEATURES, INT8_SCALE, INT8_ZERO_POINT, build_fc_tflite  # noqa: E402

from edgecheck.backends import RunOptions  # noqa: E402
from edgecheck.vendors.tflite.backend import IoMap, TfliteBackend, io_sidecar  # noqa: E402
from edgecheck.errors import BackendError  # noqa: E402


def _x(samples: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(samples, FEATURES)).astype(np.float32)


# 1. the backend on its own


def test_a_tflite_model_runs_by_its_signature_names_and_matches_numpy(tmp_path):
    weight, bias = build_fc_tflite(tmp_path / "fc.tflite", dynamic_batch=True)
    with TfliteBackend().load(tmp_path / "fc.tflite", RunOptions(threads=2)) as runner:
        assert (runner.input_names, runner.output_names) == (("x",), ("y",))  # the signature's, not the tensors'
        for samples in (1, 5, 2):  # another batch size resizes the input; back again too
            x = _x(samples, seed=samples)
            np.testing.assert_allclose(runner.infer({"x": x})["y"], x @ weight.T + bias, rtol=1e-5, atol=1e-5)


def test_without_a_signature_the_tensor_names_are_the_feed_names(tmp_path):
    build_fc_tflite(tmp_path / "fc.tflite", signature=False)
    with TfliteBackend().load(tmp_path / "fc.tflite") as runner:
        assert runner.input_names == ("serving_default_x:0",)
        assert runner.output_names == ("StatefulPartitionedCall:0",)


def test_int8_inputs_are_quantized_from_real_values_with_their_scale_and_zero_point(tmp_path):
    weight, bias = build_fc_tflite(tmp_path / "q.tflite", int8_io=True)
    x = _x(1)
    expected_q = np.clip(np.round(x / INT8_SCALE) + INT8_ZERO_POINT, -128, 127)
    expected = ((expected_q - INT8_ZERO_POINT) * INT8_SCALE).astype(np.float32) @ weight.T + bias
    with TfliteBackend().load(tmp_path / "q.tflite") as runner:
        np.testing.assert_allclose(runner.infer({"x": x})["y"], expected, rtol=1e-5, atol=1e-5)


def test_a_layout_map_renames_and_transposes_both_ways():
    entry = IoMap("input", "serving_default_input:0", (0, 2, 3, 1))
    nchw = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = entry.to_model(nchw)
    assert nhwc.shape == (2, 4, 5, 3) and nhwc[1, 2, 3, 0] == nchw[1, 0, 2, 3]
    np.testing.assert_array_equal(entry.from_model(nhwc), nchw)


def test_a_sidecar_layout_map_gives_the_onnx_names(tmp_path):
    weight, bias = build_fc_tflite(tmp_path / "fc.tflite")
    io_sidecar(tmp_path / "fc.tflite").write_text(json.dumps({
        "inputs": [{"name": "features", "model_name": "x", "perm": None}],
        "outputs": [{"name": "scores", "model_name": "y", "perm": None}]}))
    with TfliteBackend().load(tmp_path / "fc.tflite") as runner:
        assert (runner.input_names, runner.output_names) == (("features",), ("scores",))
        x = _x(1)
        np.testing.assert_allclose(runner.infer({"features": x})["scores"], x @ weight.T + bias, rtol=1e-5)


def test_a_sidecar_naming_a_tensor_the_model_lacks_is_a_loading_error(tmp_path):
    build_fc_tflite(tmp_path / "fc.tflite")
    io_sidecar(tmp_path / "fc.tflite").write_text(json.dumps({
        "inputs": [{"name": "features", "model_name": "nosuch", "perm": None}], "outputs": []}))
    with pytest.raises(BackendError, match=r"fc\.tflite.*names 'nosuch', which the model does not have"):
        TfliteBackend().load(tmp_path / "fc.tflite")


def test_tflite_runtime_built_for_numpy_1_is_refused_with_the_reason_not_run(monkeypatch):
    from importlib import metadata

    import edgecheck.vendors.tflite.backend as module

    real_version = metadata.version
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # LiteRT absent: import fails
    monkeypatch.setattr(module.metadata, "version",
                        lambda name: "2.14.0" if name == "tflite-runtime" else real_version(name))
    monkeypatch.setattr(module.np, "__version__", "2.1.0")
    availability = TfliteBackend().availability()
    assert not availability
    assert "tflite-runtime 2.14.0 is built against numpy 1" in availability.reason
    assert "_ARRAY_API not found" in availability.reason
    assert "pip install 'pytest-edgecheck[tflite]'" in availability.reason


# 2. a spec whose model is a .tflite file


def _project(pytester, *, budgets: str, compress: str = "", model: str = "fc.tflite", recipes: str = "") -> None:
    models = pytester.path / "models"
    models.mkdir(exist_ok=True)
    weight, bias = build_fc_tflite(models / "fc.tflite", dynamic_batch=True)
    x = np.random.default_rng(5).uniform(0, 1, size=(64, FEATURES)).astype(np.float32)
    np.savez(models / "eval.npz", x=x, labels=np.argmax(x @ weight.T + bias, axis=1))
    np.savez(models / "calibration.npz", x=x[:32])
    specs = pytester.path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "model.yaml").write_text(
        f"edgecheck: 1\nmodel: {{path: ../models/{model}}}\n"
        "data:\n  calibration: ../models/calibration.npz\n"
        "  evaluation: {path: ../models/eval.npz, labels: labels, metric: top1}\n"
        + (f"compress: [{compress}]\n" if compress else "")
        + "targets:\n  host:\n    backends: [tflite]\n    budgets:\n"
        + "".join(f"      {line}\n" for line in budgets.strip().splitlines())
        + (f"    recipes:\n" + "".join(f"      {line}\n" for line in recipes.strip().splitlines()) if recipes else ""))


def test_a_tflite_model_is_its_own_reference_and_its_int8_artifacts_come_from_ai_edge_quantizer(pytester):
    pytest.importorskip("ai_edge_quantizer", reason="quantizing a .tflite needs ai-edge-quantizer")
    _project(pytester, compress="tflite-int8-dynamic, tflite-int8-static",
             budgets="accuracy_drop: 5\nparity: {cosine: 0.99}\nsize_mb: 0.01\nops: {unsupported: 0}")  # 12 weights: INT8 adds more than it saves
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=11)  # no parity of the model itself: it is the reference on tflite
    properties = junit_properties(pytester.path / "report.xml")
    parity = properties["host-tflite-tflite-int8-static-parity"]
    assert parity["edge.reference"].startswith("fc.tflite (the original model) on tflite")
    assert parity["edge.runtime"].startswith("tflite ai-edge-litert")
    assert "quantized by ai-edge-quantizer" in parity["edge.recipe.did"]
    assert float(parity["edge.parity.y.cosine"]) >= 0.99
    assert "host-tflite-none-parity" not in properties
    ops = properties["host-tflite-tflite-int8-static-ops"]
    assert ops["edge.ops.table"].startswith("litert-builtins")


def test_an_onnx_recipe_after_a_tflite_step_is_refused_at_its_line(pytester):
    _project(pytester, compress="[tflite-int8-dynamic, int8-static]", budgets="size_mb: 1")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model.yaml:*compress[[]0[]][[]1[]]: recipe 'int8-static' takes .onnx models, and "
                                 "its input here is a .tflite model (after tflite-int8-dynamic)*"])


def test_a_flex_op_fails_the_ops_budget_by_name_and_the_run_fails_with_the_runtimes_message(pytester):
    _project(pytester, budgets="ops: {unsupported: 0}\naccuracy_drop: 5", model="flex.tflite")
    build_fc_tflite(pytester.path / "models" / "flex.tflite", custom_op="FlexErf", dynamic_batch=True)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert ("unsupported: node 'StatefulPartitionedCall:0' (custom:FlexErf): a select-TensorFlow (Flex) op: "
            "it needs the Flex delegate") in output
    assert "tflite failed while loading flex.tflite" in output and "FlexErf" in output


def test_a_truncated_tflite_model_fails_its_spec_only(pytester):
    _project(pytester, budgets="accuracy_drop: 5")
    models = pytester.path / "models"
    (models / "cut.tflite").write_bytes((models / "fc.tflite").read_bytes()[:200])
    (pytester.path / "specs" / "cut.yaml").write_text(
        (pytester.path / "specs" / "model.yaml").read_text().replace("fc.tflite", "cut.tflite"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*cut.tflite*cannot read the TFLite flatbuffer (truncated or corrupt?)*"])


def test_without_the_onnx2tf_environment_conversions_skip_with_the_command_that_creates_it(pytester, monkeypatch,
                                                                                         tmp_path):
    monkeypatch.setenv("EDGECHECK_ENVS", str(tmp_path / "no-envs"))
    monkeypatch.delenv("EDGECHECK_ENV_ONNX2TF", raising=False)
    models = pytester.path / "models"
    models.mkdir()
    from conftest import make_classifier

    make_classifier(models / "clf.onnx")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "model.yaml").write_text(
        "edgecheck: 1\nmodel: {path: ../models/clf.onnx}\ninputs: {x: {shape: [1, 4]}}\ncompress: [tflite-fp32]\n"
        "targets:\n  host:\n    backends: [tflite, onnxruntime]\n    budgets:\n      size_mb: 1\n")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)  # the ONNX original on onnxruntime; the conversion on tflite
    result.stdout.fnmatch_lines(["SKIPPED*recipe 'tflite-fp32': *onnx2tf*`edgecheck env create onnx2tf`*"])
    strict = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-strict")
    strict.assert_outcomes(passed=1, failed=1)


def test_the_offline_guard_refuses_network_connections_in_any_python_it_is_loaded_into(tmp_path):
    import os
    import subprocess

    offline = Path(__file__).resolve().parents[1] / "edgecheck" / "compress" / "offline"
    code = ("import socket, urllib.request\n"
            "try:\n    urllib.request.urlopen('http://192.0.2.1/calibration.npy', timeout=5)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
            "a, b = socket.socketpair()\na.sendall(b'ok')\nprint(b.recv(2).decode())\n")  # local sockets still work
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S,
                         env={**os.environ, "PYTHONPATH": str(offline)})
    assert "network access is blocked while edgecheck runs a converter" in ran.stdout
    assert ran.stdout.strip().endswith("ok")


def test_a_tflite_model_on_a_target_whose_backends_cannot_run_it_is_a_spec_error(pytester):
    _project(pytester, budgets="size_mb: 1")
    spec = pytester.path / "specs" / "model.yaml"
    spec.write_text(spec.read_text().replace("backends: [tflite]", "backends: [onnxruntime]"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model.yaml:*targets.host: none of the backends onnxruntime runs this spec's "
                                 "artifacts (.tflite files), so target 'host' would check nothing*"])


def test_only_the_batch_of_a_tflite_input_is_resized(tmp_path):
    build_fc_tflite(tmp_path / "fc.tflite", dynamic_batch=True)
    with TfliteBackend().load(tmp_path / "fc.tflite") as runner:
        with pytest.raises(BackendError, match=r"input 'x' has shape \[1, 7\], and the model takes \['\?', 4\]"):
            runner.infer({"x": np.zeros((1, 7), np.float32)})
