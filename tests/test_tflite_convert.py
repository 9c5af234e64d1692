"""ONNX to TFLite through onnx2tf, as users run it: real conversions of small models built here, in
onnx2tf's own environment (`edgecheck env create onnx2tf`; CI creates it), judged in pytester
sessions. Without the environment these tests skip with that command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import HANG_GUARD_S, junit_properties
from convert_builders import if_model, paddle_style, yolo_head
from onnx import TensorProto, helper, numpy_helper

from edgecheck.envs import find_env, run_env_env, unavailable_reason

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert: pip install 'pytest-edgecheck[tflite]'")
ENV = find_env("onnx2tf")
pytestmark = pytest.mark.skipif(ENV is None, reason=unavailable_reason("onnx2tf") or "")
COMPRESS = Path(__file__).resolve().parents[1] / "edgecheck" / "compress"
TFLITE_VENDOR = COMPRESS.parent / "vendors" / "tflite"


def conv_model(path: Path, custom_op: bool = False) -> Path:
    """x[N, 3, 8, 6] -> Conv 3x3 -> Relu -> features[N, 4, 8, 6] -> Flatten -> MatMul -> scores[N, 5]: an
    NCHW input and a 4-D output of unequal height and width, so a wrong layout cannot pass parity."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    dense = numpy_helper.from_array((rng.normal(size=(4 * 8 * 6, 5)) * 0.1).astype(np.float32), "g")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], name="conv"),
             helper.make_node("Relu", ["c"], ["features"], name="relu"),
             helper.make_node("Flatten", ["features"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "g"], ["scores"], name="fc")]
    opsets = [helper.make_opsetid("", 13)]
    if custom_op:  # an op of a domain onnx2tf does not know: the conversion must fail, by name
        nodes[1] = helper.make_node("Mystery", ["c"], ["features"], name="mystery", domain="my.ops")
        opsets.append(helper.make_opsetid("my.ops", 1))
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 6])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4, 8, 6]),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 5])], [weight, dense])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _data(models: Path) -> None:
    import onnxruntime

    x = np.random.default_rng(1).uniform(0, 1, size=(48, 3, 8, 6)).astype(np.float32)
    scores = onnxruntime.InferenceSession(str(models / "conv.onnx")).run(["scores"], {"x": x})[0]
    np.savez(models / "eval.npz", x=x, labels=np.argmax(scores, axis=1))
    np.savez(models / "calibration.npz", x=x[:24])


SPEC = """\
edgecheck: 1
model: {{path: ../models/{model}}}
data:
  calibration: ../models/calibration.npz
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1, output: scores}}
compress: [tflite-fp32, tflite-fp16, tflite-int8-dynamic, tflite-int8-static]
targets:
  host:
    backends: [tflite]
    budgets:
      accuracy_drop: 25
      parity: {{cosine: 0.98}}
      ops: {{unsupported: 0}}
    recipes:
      tflite-fp32: {{parity: {{rel_l2: 0.00001}}}}   # float rounding only: any layout slip is far above this
      tflite-fp16: {{parity: {{rel_l2: 0.005}}}}
"""


def test_onnx2tf_conversions_match_onnx_runtime_across_the_layout_change(pytester):
    models = pytester.path / "models"
    models.mkdir()
    original = conv_model(models / "conv.onnx").read_bytes()
    _data(models)
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "conv.yaml").write_text(SPEC.format(model="conv.onnx"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml", "-rA")
    result.assert_outcomes(passed=12)
    assert (models / "conv.onnx").read_bytes() == original  # onnx2tf rewrites its input: it only saw a copy
    properties = junit_properties(pytester.path / "report.xml")
    fp32 = properties["host-tflite-tflite-fp32-parity"]
    assert float(fp32["edge.parity.features.rel_l2"]) < 1e-5  # the 4-D output, mapped back to NCHW
    assert float(fp32["edge.parity.scores.rel_l2"]) < 1e-5
    assert "channels last" in fp32["edge.recipe.layout"] and "[0, 2, 3, 1]" in fp32["edge.recipe.layout"]
    assert fp32["edge.recipe.did"].startswith("converted by onnx2tf 1.")
    static = properties["host-tflite-tflite-int8-static-parity"]
    assert "full_integer" not in static["edge.recipe.did"] and "int8-static-int8-io" in static["edge.recipe.did"]
    assert float(static["edge.parity.scores.cosine"]) >= 0.98  # calibrated on the spec's data, with no network


def test_a_model_onnx2tf_cannot_convert_fails_that_entry_with_the_converters_message(pytester):
    models = pytester.path / "models"
    models.mkdir()
    conv_model(models / "conv.onnx")
    _data(models)
    conv_model(models / "odd.onnx", custom_op=True)
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "odd.yaml").write_text(
        "edgecheck: 1\nmodel: {path: ../models/odd.onnx}\ninputs: {x: {shape: [1, 3, 8, 6]}}\n"
        "compress: [tflite-fp32]\ntargets:\n  host:\n    budgets: {size_mb: 1}\n")
    (pytester.path / "specs" / "good.yaml").write_text(
        "edgecheck: 1\nmodel: {path: ../models/conv.onnx}\ninputs: {x: {shape: [1, 3, 8, 6]}}\n"
        "compress: [tflite-fp32]\ntargets:\n  host:\n    budgets: {size_mb: 1}\n")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)  # odd: the original passes on onnxruntime, its conversion fails
    result.stdout.fnmatch_lines(["*recipe 'tflite-fp32': onnx2tf could not convert odd.onnx (with x *"])


def test_the_converter_is_refused_the_network_when_it_tries_to_download_calibration_data(tmp_path):
    """Quantizing without calibration data, onnx2tf fetches a sample file from GitHub: under
    edgecheck it is refused at once (edgecheck always passes the spec's data, so it never asks)."""
    model = conv_model(tmp_path / "conv.onnx")
    (tmp_path / "job.json").write_text(json.dumps({"model": str(model), "work_dir": str(tmp_path),
                                                    "mode": "int8-static-int8-io"}))
    environ = run_env_env(ENV)
    environ["PYTHONPATH"] = str(COMPRESS / "offline")
    ran = subprocess.run([str(ENV.python), str(TFLITE_VENDOR / "onnx2tf_driver.py"), str(tmp_path / "job.json"),
                          str(tmp_path / "result.json")], cwd=tmp_path, env=environ, capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    result = json.loads((tmp_path / "result.json").read_text())
    assert ran.returncode == 1 and not result["ok"]
    assert "calibration_image_sample_data" in result["error"]
    assert "network access is blocked while edgecheck runs a converter" in result["error"]
    assert os.listdir(tmp_path).count("calibration_image_sample_data_20x128x128x3_float32.npy") == 0


def awkward_model(path: Path) -> Path:
    """What broke the first converter recipe: a 3-channel image input of batch 1 (onnx2tf then fetches
    sample images to check itself), a name onnx2tf renames ('in:0' → 'in__0'), shapes that look the
    same in both layouts ([1,3,3,3]), an output onnx2tf leaves in ONNX layout (a Reshape), and the
    weights in an external file not named <model>.data."""
    rng = np.random.default_rng(2)
    weight = numpy_helper.from_array(rng.normal(size=(3, 3, 3, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 3, 3, 3], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["in:0", "w"], ["features"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], name="conv"),
             helper.make_node("Flatten", ["features"], ["flat"], name="flatten"),
             helper.make_node("Sin", ["flat"], ["wave"], name="sin"),
             helper.make_node("Reshape", ["wave", "shape"], ["reshaped"], name="reshape")]
    graph = helper.make_graph(nodes, "awkward", [helper.make_tensor_value_info("in:0", TensorProto.FLOAT, [1, 3, 3, 3])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 3, 3]),
                               helper.make_tensor_value_info("reshaped", TensorProto.FLOAT, [1, 3, 3, 3])],
                              [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=200)  # the weight, not the shape
    return path


def test_ambiguous_layouts_renamed_inputs_and_image_inputs_convert_and_match(pytester):
    models = pytester.path / "models"
    models.mkdir()
    awkward_model(models / "awkward.onnx")
    x = np.random.default_rng(4).uniform(0, 1, size=(16, 3, 3, 3)).astype(np.float32)
    np.savez(models / "calibration.npz", **{"in:0": x})
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "awkward.yaml").write_text(
        "edgecheck: 1\nmodel: {path: ../models/awkward.onnx}\ndata: {calibration: ../models/calibration.npz}\n"
        "compress: [tflite-fp32, tflite-int8-static]\ntargets:\n  host:\n    backends: [tflite]\n    budgets:\n"
        "      parity: {cosine: 0.95}\n    recipes:\n      tflite-fp32: {parity: {rel_l2: 0.00001}}\n")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=2)
    fp32 = junit_properties(pytester.path / "report.xml")["host-tflite-tflite-fp32-parity"]
    assert float(fp32["edge.parity.reshaped.rel_l2"]) < 1e-5 and float(fp32["edge.parity.features.rel_l2"]) < 1e-5


# 2. models of the kinds real exporters write (tests/convert_builders.py): as exported, onnx2tf fails on
# each; with the recipe's preparation (shapes fixed, graph simplified, branch constants copied, the batch
# fixed where a dynamic one fails) each converts and matches ONNX Runtime

KIND_SPEC = """\
edgecheck: 1
model: {{path: ../models/{model}}}
inputs: {inputs}
{data}compress: [{compress}]
targets:
  host:
    backends: [tflite]
    budgets:
      parity: {{rel_l2: 0.0001}}
"""


def _kind_spec(pytester, name: str, inputs: str, compress: str = "tflite-fp32", calibration: dict | None = None):
    data = ""
    if calibration is not None:
        np.savez(pytester.path / "models" / f"{name}-calibration.npz", **calibration)
        data = f"data: {{calibration: ../models/{name}-calibration.npz}}\n"
    (pytester.path / "specs").mkdir(exist_ok=True)
    (pytester.path / "specs" / f"{name}.yaml").write_text(
        KIND_SPEC.format(model=f"{name}.onnx", inputs=inputs, data=data, compress=compress))


def test_a_detector_a_paddle_graph_and_an_if_model_convert_after_preparation_and_match(pytester):
    models = pytester.path / "models"
    models.mkdir()
    rng = np.random.default_rng(5)
    yolo_head(models / "yolo.onnx")
    _kind_spec(pytester, "yolo", "{images: {shape: [3, 3, 64, 96]}}",  # 3 samples to a model fixed to batch 1
               calibration={"images": rng.uniform(0, 1, (4, 3, 64, 96)).astype(np.float32)})
    paddle_style(models / "paddle.onnx")
    _kind_spec(pytester, "paddle", "{x: {shape: [2, 3, 32, 48]}}",
               calibration={"x": rng.uniform(0, 1, (4, 3, 32, 48)).astype(np.float32)})
    if_model(models / "vad.onnx")
    _kind_spec(pytester, "vad", "{sr: {range: [16000, 16000]}, input: {range: [-1, 1]}, state: {batch_axis: 1}}")
    originals = {p.name: p.read_bytes() for p in models.iterdir()}
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml", "-rA")
    result.assert_outcomes(passed=3)
    assert {p.name: p.read_bytes() for p in models.iterdir()} == originals
    properties = {case.split("::")[0]: props for case, props in
                  junit_properties(pytester.path / "report.xml", qualified=True).items()}
    yolo, paddle, vad = (next(props for case, props in properties.items() if name in case)
                         for name in ("yolo", "paddle", "vad"))
    assert yolo["edge.recipe.prepared"].startswith("shapes fixed: images; simplified by onnxsim")
    assert ("batch fixed to 1 (a dynamic batch did not convert: with images [?, 3, 64, 96], onnx2tf failed at "
            "'/model.22/Sub': ValueError: axes don't match array)") in yolo["edge.recipe.prepared"]
    assert float(yolo["edge.parity.output0.rel_l2"]) < 1e-4  # 3 samples, one at a time
    assert paddle["edge.recipe.prepared"].startswith("shapes fixed: x; simplified by onnxsim")
    assert "batch fixed" not in paddle["edge.recipe.prepared"]  # its dynamic batch converts
    assert vad["edge.recipe.prepared"].startswith("2 constants copied into the branches that read them")


def test_as_exported_the_if_model_fails_naming_the_node_and_the_option_to_try(pytester):
    models = pytester.path / "models"
    models.mkdir()
    if_model(models / "vad.onnx")
    _kind_spec(pytester, "vad", "{sr: {range: [16000, 16000]}, state: {batch_axis: 1}}",
               compress="tflite-fp32: {simplify: false}")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*onnx2tf could not convert vad.onnx (with input [[]1, 64], state [[]2, 1, 16], sr [[]]): "
                                 "it failed at node '/If' (If): KeyError: '/Constant_output_0'; try next: simplify: "
                                 "true (the default): it copies the constants the branches read into them*"])
