"""Verdicts that must not pass when the figures behind them mean nothing: labels that do not belong
to the inputs, a top-k metric every model aces, a relative budget against zero, parity inputs that
do not exercise the model, and outputs identical bit for bit because the runtime never did the
reduced-precision arithmetic. Real pytest sessions on models built with onnx.helper."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import junit_properties
from onnx import TensorProto, helper, numpy_helper

from edgecheck.checks.accuracy import chance_score, judge_accuracy
from edgecheck.spec import Budgets

FEATURES, CLASSES = 8, 10


def _save(path: Path, nodes: list, inputs: list, outputs: list, initializers: list) -> None:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _classifier(folder: Path, samples: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """clf.onnx: x [N, 8] -> logits [N, 10]; returns inputs and the labels the model itself gives."""
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 1, (FEATURES, CLASSES)).astype(np.float32)
    _save(folder / "clf.onnx", [helper.make_node("MatMul", ["x", "W"], ["logits"])],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
          [numpy_helper.from_array(weights, "W")])
    x = rng.normal(0, 1, (samples, FEATURES)).astype(np.float32)
    return x, (x @ weights).argmax(axis=1).astype(np.int64)


def _gated(folder: Path) -> None:
    """gated.onnx: y = sigmoid((x @ W) * (sr == 16000)): any other rate gives 0.5 for every sample,
    like a voice detector fed the wrong sample rate."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Equal", ["sr", "rate"], ["on"]),
             helper.make_node("Cast", ["on"], ["gate"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xw", "gate"], ["z"]), helper.make_node("Sigmoid", ["z"], ["y"])]
    _save(folder / "gated.onnx", nodes,
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16]),
           helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
          [numpy_helper.from_array(rng.normal(0, 1, (16, 4)).astype(np.float32), "W"),
           numpy_helper.from_array(np.array(16000, np.int64), "rate")])


def _spec(pytester: pytest.Pytester, text: str, name: str = "model.yaml") -> None:
    (pytester.path / "specs").mkdir(exist_ok=True)
    (pytester.path / "specs" / name).write_text(text)


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, str]]]:
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=report.xml", *args)
    report = pytester.path / "report.xml"
    return result, (junit_properties(report) if report.is_file() else {})


def _notes(properties: dict[str, str]) -> str:
    return " | ".join(v for k, v in properties.items() if k.startswith("edge.note."))


ACCURACY_SPEC = """edgecheck: 1
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/{data}, labels: labels{metric}}}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: {budget}
"""


# ------------------------------------------------------------ 1. labels that are no better than chance

def test_an_original_no_better_than_chance_makes_the_accuracy_verdict_inconclusive(pytester):
    models = pytester.mkdir("models")
    x, labels = _classifier(models)
    shuffled = np.random.default_rng(5).permutation(labels)
    np.savez(models / "right.npz", x=x, labels=labels)
    np.savez(models / "shuffled.npz", x=x, labels=shuffled)
    np.savez(models / "wrong3.npz", x=x[:3], labels=(labels[:3] + 1) % CLASSES)  # 3 samples, all wrong

    _spec(pytester, ACCURACY_SPEC.format(data="right.npz", metric="", budget=2))  # real labels: judged
    result, cases = _run(pytester)
    result.assert_outcomes(passed=1)
    assert cases["host-onnxruntime-none-accuracy"]["edge.verdict"] == "pass"

    _spec(pytester, ACCURACY_SPEC.format(data="shuffled.npz", metric="", budget=2))
    result, cases = _run(pytester)
    case = cases["host-onnxruntime-none-accuracy"]
    assert case["edge.verdict"] == "inconclusive"
    assert "on 200 samples of 10 classes, no better than chance" in _notes(case)
    assert "the labels may not belong to the inputs; cannot judge an accuracy drop" in _notes(case)
    result.stdout.fnmatch_lines(["  inconclusive*accuracy*none*top1 * % → * % (±0 pt)*drop ≤ 2 pt",  # no margin: the figures mean nothing
                                 "      the original model scores * % top-1 on 200 samples of 10 classes, no*"])
    failing, _ = _run(pytester, "--edge-inconclusive=fail")
    failing.assert_outcomes(failed=1)
    failing.stdout.fnmatch_lines(["*accuracy verdict inconclusive (the original model scores * % top-1 on 200 "
                                  "samples of 10 classes, no better than chance*"])

    _spec(pytester, ACCURACY_SPEC.format(data="wrong3.npz", metric="", budget=2))
    _, cases = _run(pytester)
    case = cases["host-onnxruntime-none-accuracy"]
    assert case["edge.verdict"] == "inconclusive" and float(case["edge.accuracy.original"]) == 0.0
    assert "scores 0 % top-1 on 3 samples of 10 classes, no better than chance (" in _notes(case)


def test_chance_counts_imbalanced_classes():
    # the model predicts class 0 for 90 % of samples and 90 % of labels are 0: labels in random order
    # score 0.9 * 0.9 + 0.1 * 0.1 = 82 %, far above 1 / classes
    scores = np.zeros((100, 4))
    scores[:90, 0] = scores[90:, 1] = 1.0
    labels = np.array([0] * 90 + [1] * 10)
    assert chance_score(scores, labels, 1) == pytest.approx(82.0)
    assert chance_score(scores, np.array([2] * 100), 1) == pytest.approx(25.0)  # never below k / classes


# ------------------------------------------------------------ 2. top-k with k >= classes

def test_topk_at_or_above_the_outputs_classes_is_refused_when_the_spec_loads(pytester):
    models = pytester.mkdir("models")
    x, labels = _classifier(models)
    np.savez(models / "right.npz", x=x, labels=labels)
    _spec(pytester, ACCURACY_SPEC.format(data="right.npz", metric=", metric: 'topk:10'", budget=1))
    result, _ = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model.yaml:4: data.evaluation.metric: metric 'topk:10' counts a sample right when "
                                 "its label is among the 10 highest scores, and output 'logits' has 10 classes: every "
                                 "model scores 100 %; use a k below 10 (top1 .. topk:9)*"])
    _spec(pytester, ACCURACY_SPEC.format(data="right.npz", metric=", metric: 'topk:9'", budget=1))
    _run(pytester)[0].assert_outcomes(passed=1)


# ------------------------------------------------------------ 3. a relative budget against an original of 0

def test_a_relative_budget_against_an_original_of_zero_cannot_be_judged(pytester):
    models = pytester.mkdir("models")
    x, _ = _classifier(models)
    import onnxruntime

    exact = onnxruntime.InferenceSession(str(models / "clf.onnx")).run(None, {"x": x})[0]
    np.savez(models / "exact.npz", x=x, labels=exact)  # the original's mse is exactly 0
    _spec(pytester, ACCURACY_SPEC.format(data="exact.npz", metric=", metric: mse", budget="'1%'"))
    result, cases = _run(pytester)
    case = cases["host-onnxruntime-none-accuracy"]
    assert case["edge.verdict"] == "inconclusive"
    assert "a drop relative to 0 means nothing" in _notes(case)
    result.stdout.fnmatch_lines(["  inconclusive*accuracy*none*mse 0 → 0 (±0 %)*drop ≤ 1 %",
                                 "      cannot judge: the original model scores 0, and a drop relative to 0 means*"])
    failing, _ = _run(pytester, "--edge-inconclusive=fail")
    failing.stdout.fnmatch_lines(["*accuracy_drop_relative*0 %*≤ 1 %*INCONCLUSIVE*"])


def test_relative_drop_from_zero():
    gain = judge_accuracy(0.0, 5.0, "%", True, Budgets(accuracy_drop="1%"))  # was "-inf % pass"
    assert gain.verdict == "inconclusive" and "give the budget in points" in gain.breaches()[0]
    loss = judge_accuracy(0.0, 0.5, "", False, Budgets(accuracy_drop="1%"))  # mse 0 -> 0.5: a loss, a breach
    assert loss.verdict == "fail"
    broken = judge_accuracy(0.0, math.nan, "%", True, Budgets(accuracy_drop="1%"))  # NaN is never a pass
    assert broken.verdict == "fail"


# ------------------------------------------------------------ 4. parity inputs that exercise nothing

GATED_SPEC = """edgecheck: 1
model: {{path: ../models/gated.onnx}}
{inputs}data:
  parity_samples: 16
{data}compress: [fp16]  # parity of an artifact: the model itself is the reference on onnxruntime
targets:
  host:
    backends: [onnxruntime]
    budgets:
      parity: {{rel_l2: 0.1}}
"""


def test_a_reference_output_that_never_varies_makes_parity_inconclusive(pytester):
    models = pytester.mkdir("models")
    _gated(models)
    _spec(pytester, GATED_SPEC.format(inputs="", data=""))  # synthetic: sr drawn from [0, 1], never 16000
    result, cases = _run(pytester)
    case = cases["host-onnxruntime-fp16-parity"]
    assert case["edge.verdict"] == "inconclusive" and float(case["edge.parity.y.rel_l2"]) == 0.0
    assert ("the reference's output 'y' is the same for all 16 parity samples: the inputs do not exercise the "
            "model; give real inputs in data.parity or fix") in _notes(case)
    assert "inputs.sr.range (synthetic, drawn from the default [0, 1])" in _notes(case)
    result.stdout.fnmatch_lines(["  inconclusive*parity*fp16*y rel_l2 0*",
                                 "      the reference's output 'y' is the same for all 16 parity samples*"])

    _spec(pytester, GATED_SPEC.format(inputs="inputs:\n  sr: {fixed: 16000}\n", data=""))  # exercised: judged
    _, cases = _run(pytester)
    assert cases["host-onnxruntime-fp16-parity"]["edge.verdict"] == "pass"


def test_parity_runs_on_the_calibration_data_and_notes_a_fixed_value_the_file_contradicts(pytester):
    models = pytester.mkdir("models")
    _gated(models)
    rng = np.random.default_rng(2)
    np.savez(models / "cal.npz", x=rng.normal(0, 1, (40, 16)).astype(np.float32), sr=np.array(16000, np.int64))
    _spec(pytester, GATED_SPEC.format(inputs="", data="  calibration: ../models/cal.npz\n"))
    _, cases = _run(pytester)
    case = cases["host-onnxruntime-fp16-parity"]
    assert case["edge.verdict"] == "pass"  # real inputs: sr is 16000, the output varies
    assert case["edge.inputs"] == "cal.npz (16 of 40 samples) from data.calibration (no data.parity or data.evaluation)"

    _spec(pytester, GATED_SPEC.format(inputs="inputs:\n  sr: {fixed: 8000}\n", data="  calibration: ../models/cal.npz\n"))
    result, cases = _run(pytester)
    result.assert_outcomes(passed=1)  # a note, not an error
    case = cases["host-onnxruntime-fp16-parity"]
    assert ("note: the spec fixes input 'sr' to 8000, the file's array 'sr' holds 16000: the spec's value is fed"
            in case["edge.inputs"])
    assert case["edge.verdict"] == "inconclusive"  # and 8000 gates the model off
    assert "or fix inputs.sr.fixed (now 8000)" in _notes(case)


def test_a_model_with_open_dimensions_and_only_calibration_data_needs_no_declared_shape(pytester):
    """Parity runs on the calibration data, so no synthetic input (which needs inputs.x.shape) is made."""
    models = pytester.mkdir("models")
    _save(models / "open.onnx", [helper.make_node("Relu", ["x"], ["y"])],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "t"])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "t"])], [])
    np.savez(models / "cal.npz", x=np.random.default_rng(3).normal(0, 1, (8, 5)).astype(np.float32))
    _spec(pytester, GATED_SPEC.replace("gated.onnx", "open.onnx").format(
        inputs="", data="  calibration: ../models/cal.npz\n"))
    result, cases = _run(pytester)
    result.assert_outcomes(passed=1)
    assert cases["host-onnxruntime-fp16-parity"]["edge.inputs"].startswith("cal.npz (8 of 8 samples)")


# ------------------------------------------------------------ 5. outputs identical bit for bit

def test_a_changed_artifact_with_bit_identical_outputs_gets_a_note(pytester):
    models = pytester.mkdir("models")
    _save(models / "plain.onnx", [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [])
    np.savez(models / "parity.npz", x=np.random.default_rng(3).normal(0, 1, (8, 10)).astype(np.float32))
    _spec(pytester, """edgecheck: 1
model: {path: ../models/plain.onnx}
data: {parity: ../models/parity.npz}
compress: [fp16]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      parity: {rel_l2: 0.1}
""")
    result, cases = _run(pytester)
    result.assert_outcomes(passed=1)  # a note only: the verdict stays
    fp16 = cases["host-onnxruntime-fp16-parity"]
    assert fp16["edge.verdict"] == "pass" and float(fp16["edge.parity.y.rel_l2"]) == 0.0
    assert ("the artifact's outputs are identical bit for bit to the reference's on all 8 parity samples, though "
            "its recipe changed the model: onnxruntime here computed it in the reference's arithmetic") in _notes(fp16)
    assert "a device that computes in float16" in _notes(fp16)
    assert "host-onnxruntime-none-parity" not in cases  # the reference against itself: not planned


def test_one_constant_output_beside_varying_ones_is_a_note_not_a_doubt():
    """A detector's anchors output is the same for every input by design: parity on its other outputs
    still judges; only when every output is constant do the inputs exercise nothing."""
    from edgecheck.checks.parity import compare_outputs, judge_parity
    from edgecheck.spec.schema import ParityBudget

    rng = np.random.default_rng(0)
    anchors = np.tile(np.arange(4, dtype=np.float32), (8, 1))
    scores = rng.normal(size=(8, 4)).astype(np.float32)
    reference = {"scores": scores, "anchors": anchors}
    candidate = {"scores": scores + 1e-4, "anchors": anchors}
    mixed = judge_parity(compare_outputs(reference, candidate), ParityBudget(rel_l2=0.01), samples=8)
    assert not mixed.doubts and mixed.passed
    assert any("'anchors' is the same for all 8" in note for note in mixed.notes)
    only_constant = judge_parity(compare_outputs({"anchors": anchors}, {"anchors": anchors}),
                                 ParityBudget(rel_l2=0.01), samples=8)
    assert only_constant.doubts and "do not exercise the model" in only_constant.doubts[0]
