"""A .tflite whose weights are float16 behind DEQUANTIZE ops (how MediaPipe ships its models):
ai-edge-quantizer alone changes nothing in it (same size, same types), so `tflite-int8-dynamic`
first makes those weights float32 in a copy, then quantizes, and says so; where that route is closed
the recipe is skipped with the reason, which --edge-strict fails. Models built with the TFLite schema
(tests/tflite_builders.py), run on LiteRT in pytester sessions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert: pip install 'pytest-edgecheck[tflite]'")
pytest.importorskip("ai_edge_quantizer", reason="quantizing a .tflite needs ai-edge-quantizer")
from conftest import junit_properties  # noqa: E402
from tflite_builders import FEATURES, build_fc_tflite, build_fp16_weights_tflite  # noqa: E402

from edgecheck.vendors.tflite.fp16 import dequantize_fp16_weights, find_fp16_weights, weight_types  # noqa: E402


def _run(path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_signature_runner()(x=x)["y"]


def test_the_rewrite_gives_float32_constants_of_the_same_values_and_the_same_outputs(tmp_path):
    weight, bias = build_fp16_weights_tflite(tmp_path / "fp16.tflite")
    found = find_fp16_weights(tmp_path / "fp16.tflite")
    assert found.tensors == ("dense/MatMul_fp16", "dense/BiasAdd_fp16") and not found.obstacle
    assert dequantize_fp16_weights(tmp_path / "fp16.tflite", tmp_path / "fp32.tflite") == 2
    assert weight_types(tmp_path / "fp16.tflite") == {"float16": 2}
    assert weight_types(tmp_path / "fp32.tflite") == {"float32": 2}  # the float16 copies are gone
    assert find_fp16_weights(tmp_path / "fp32.tflite").tensors == ()
    from edgecheck.vendors.tflite.model import read_tflite

    # the float16 tensors nothing reads any more are gone, not left without data (a calibrator reads every tensor)
    before, after = read_tflite(tmp_path / "fp16.tflite"), read_tflite(tmp_path / "fp32.tflite")
    assert after.op_counts() == {"FULLY_CONNECTED": 1} and before.op_counts()["DEQUANTIZE"] == 2
    x = np.random.default_rng(0).uniform(-1, 1, (1, FEATURES)).astype(np.float32)
    assert np.array_equal(_run(tmp_path / "fp32.tflite", x), _run(tmp_path / "fp16.tflite", x))  # float16 → float32 is exact
    np.testing.assert_allclose(_run(tmp_path / "fp32.tflite", x), x @ weight.T + bias, rtol=1e-5, atol=1e-6)


def test_a_model_without_float16_weights_is_not_touched(tmp_path):
    build_fc_tflite(tmp_path / "fc.tflite")
    assert find_fp16_weights(tmp_path / "fc.tflite").tensors == ()
    assert weight_types(tmp_path / "fc.tflite") == {"float32": 2}


def test_weights_outside_the_flatbuffer_close_the_route_and_say_so(tmp_path):
    build_fp16_weights_tflite(tmp_path / "big.tflite", offset_buffers=True)
    found = find_fp16_weights(tmp_path / "big.tflite")
    assert found.tensors and "stored outside the flatbuffer" in found.obstacle


def _project(pytester, model: str, offset_buffers: bool = False, compress: str = "tflite-int8-dynamic") -> None:
    models = pytester.path / "models"
    models.mkdir(exist_ok=True)
    weight, bias = build_fp16_weights_tflite(models / model, offset_buffers=offset_buffers)
    x = np.random.default_rng(5).uniform(0, 1, size=(64, FEATURES)).astype(np.float32)
    np.savez(models / "eval.npz", x=x, labels=np.argmax(x @ weight.T + bias, axis=1))
    np.savez(models / "calibration.npz", x=x[:16])
    (pytester.path / "specs").mkdir(exist_ok=True)
    (pytester.path / "specs" / f"{model}.yaml").write_text(
        f"edgecheck: 1\nmodel: {{path: ../models/{model}}}\n"
        "data:\n  evaluation: {path: ../models/eval.npz, labels: labels, metric: top1}\n"
        f"  calibration: ../models/calibration.npz\ncompress: [{compress}]\n"
        "targets:\n  host:\n    backends: [tflite]\n    budgets:\n"
        "      parity: {cosine: 0.99}\n")


def test_float16_weights_behind_dequantize_are_made_float32_then_quantized_and_the_notes_say_so(pytester):
    _project(pytester, "mediapipe.tflite")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=1)
    parity = junit_properties(pytester.path / "report.xml")["host-tflite-tflite-int8-dynamic-parity"]
    assert parity["edge.recipe.did"].startswith("quantized by ai-edge-quantizer")
    assert "after its 2 float16 weights behind DEQUANTIZE ops were made float32" in parity["edge.recipe.did"]
    assert parity["edge.recipe.weights"] == "constant tensors by type before: 2 float16; after: 1 float32, 1 int8"
    assert 0.99 <= float(parity["edge.parity.y.cosine"]) < 1  # quantized: no longer the same numbers


def test_static_int8_takes_the_same_route_and_calibrates(pytester):
    """The calibrator reads every tensor: the rewritten copy must hold no float16 tensor left without data."""
    _project(pytester, "mediapipe.tflite", compress="tflite-int8-static")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=1)
    parity = junit_properties(pytester.path / "report.xml")["host-tflite-tflite-int8-static-parity"]
    assert "after its 2 float16 weights behind DEQUANTIZE ops were made float32" in parity["edge.recipe.did"]
    assert "static INT8" in parity["edge.recipe.did"]


def test_where_the_route_is_closed_the_recipe_is_skipped_with_the_reason_and_strict_fails(pytester):
    _project(pytester, "big.tflite", offset_buffers=True)
    reason = ("*recipe 'tflite-int8-dynamic' on big.tflite: nothing to quantize: the weights are float16 behind "
              "DEQUANTIZE (2 tensors, e.g. 'dense/MatMul_fp16'); edgecheck cannot make them float32 first: they are "
              "stored outside the flatbuffer*")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([reason])
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "-rA", "--edge-strict")
    assert result.ret != 0
    result.stdout.fnmatch_lines([reason])
