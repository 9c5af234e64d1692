"""Operator budgets and estimated latency as users run them: pytester sessions on real spec files and
small models built with onnx.helper. Nothing here needs a board or a vendor toolkit: both checks read
the model file and data files only."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import junit_properties as _properties
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def _save(path, nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _weight(name, shape):
    return numpy_helper.from_array(np.full(shape, 0.1, np.float32), name)


def _nonzero_model(path):
    """x[1,3,8,8] → Conv 'stem' → NonZero 'find_peaks' on the conv's output → Transpose."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="stem", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("NonZero", ["c"], ["nz"], name="find_peaks"),
             helper.make_node("Transpose", ["nz"], ["peaks"], name="to_rows", perm=[1, 0])]
    return _save(path, nodes, [("x", FLOAT, [1, 3, 8, 8])],
                 [("c", FLOAT, [1, 4, 8, 8]), ("peaks", TensorProto.INT64, [None, 4])], [_weight("w", (4, 3, 3, 3))])


def _conv_model(path):
    """x[1,3,8,8] → Conv 'stem' → Relu: every shape known, so its estimate counts all its work."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="stem", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c"], ["y"], name="act")]
    return _save(path, nodes, [("x", FLOAT, [1, 3, 8, 8])], [("y", FLOAT, [1, 4, 8, 8])], [_weight("w", (4, 3, 3, 3))])


def _if_model(path):
    """x → ReduceSum → Greater → If: the then branch holds a NonZero 'branch_nonzero'."""
    then_g = helper.make_graph([helper.make_node("NonZero", ["x"], ["t"], name="branch_nonzero")], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.INT64, [2, None])])
    else_g = helper.make_graph([helper.make_node("Shape", ["x"], ["s"], name="branch_shape"),
                                helper.make_node("Unsqueeze", ["s", "axis"], ["e"], name="branch_unsqueeze")],
                               "else", [], [helper.make_tensor_value_info("e", TensorProto.INT64, [2, None])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["sum"], name="total", keepdims=0),
             helper.make_node("Greater", ["sum", "zero"], ["cond"], name="positive"),
             helper.make_node("If", ["cond"], ["y"], name="gate", then_branch=then_g, else_branch=else_g)]
    return _save(path, nodes, [("x", FLOAT, [2, 4])], [("y", TensorProto.INT64, [2, None])],
                 [numpy_helper.from_array(np.array(0, np.float32), "zero"),
                  numpy_helper.from_array(np.array([1], np.int64), "axis")])


def _spec(model: str, target: str, budgets: str, backends: str = "") -> str:
    lines = "\n".join("      " + line for line in budgets.strip().splitlines())
    return (f"edgecheck: 1\nmodel: {{path: ../models/{model}}}\ntargets:\n  {target}:\n"
            + (f"    backends: [{backends}]\n" if backends else "") + f"    budgets:\n{lines}\n")


@pytest.fixture
def models(pytester):
    folder = pytester.path / "models"
    folder.mkdir(exist_ok=True)
    return folder


# 1. operator budgets on a device target


def test_an_unsupported_node_fails_the_rknn_ops_check_without_any_rknn_installed(pytester, spec_project, models):
    _nonzero_model(models / "peaks.onnx")
    spec_project(_spec("peaks.onnx", "rk3588", "ops: {unsupported: 0}", backends="rknn, onnxruntime"))
    result = pytester.runpytest("specs", "-v", "-rA", "--junitxml=report.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*model.yaml::rk3588-rknn-none-ops FAILED*",
                                 "*model.yaml::rk3588-onnxruntime-none-ops PASSED*"])
    output = result.stdout.str()
    assert "unsupported: node 'find_peaks' (NonZero)" in output
    assert "[rule: rknn-rk3588 table" in output

    cases = _properties(pytester.path / "report.xml")
    rknn, ort = cases["rk3588-rknn-none-ops"], cases["rk3588-onnxruntime-none-ops"]
    assert rknn["edge.verdict"] == "fail" and ort["edge.verdict"] == "pass"
    assert rknn["edge.ops.unsupported"] == "1" and rknn["edge.ops.unsupported.budget"] == "<= 0 nodes"
    assert rknn["edge.ops.table"].startswith("rknn-rk3588: ")
    assert rknn["edge.measured_on"].startswith("nowhere")
    assert "not run" in rknn["edge.runtime"]
    assert any("find_peaks" in v and "NonZero" in v for k, v in rknn.items() if k.startswith("edge.note."))
    assert ort["edge.ops.unsupported"] == "0" and ort["edge.ops.table"].startswith("onnxruntime-cpu: ")
    assert ort["edge.measured_on"].startswith("nowhere")
    assert int(ort["edge.model.parameters"]) == 4 * 3 * 3 * 3


def test_an_offending_node_in_an_if_branch_is_named_with_its_branch(pytester, spec_project, models):
    _if_model(models / "gated.onnx")
    spec_project(_spec("gated.onnx", "rk3588", "ops: {unsupported: 0}", backends="rknn"))
    result = pytester.runpytest("specs", "--junitxml=report.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unsupported: node 'branch_nonzero' (NonZero) in gate.then_branch:*"])
    # the If itself breaks the table's rule too: its condition is computed, not constant
    result.stdout.fnmatch_lines(["*unsupported: node 'gate' (If): input 0 ('cond') is computed at run time*"])
    assert "branch_shape" not in result.stdout.str() and "branch_unsqueeze" not in result.stdout.str()
    case = _properties(pytester.path / "report.xml")["rk3588-rknn-none-ops"]
    assert case["edge.ops.unsupported"] == "2" and case["edge.ops.nodes"] == "6"


def test_a_fallback_bound_counts_fallbacks_separately(pytester, spec_project, models):
    k = numpy_helper.from_array(np.array([3], np.int64), "k")
    _save(models / "topk.onnx", [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="best3")],
          [("x", FLOAT, [1, 10])], [("v", FLOAT, [1, 3]), ("i", TensorProto.INT64, [1, 3])], [k])
    spec_project(_spec("topk.onnx", "rk3588", "ops: {unsupported: 0, fallback: 0}", backends="rknn"))
    result = pytester.runpytest("specs", "--junitxml=report.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*fallback: node 'best3' (TopK)*"])
    case = _properties(pytester.path / "report.xml")["rk3588-rknn-none-ops"]
    assert (case["edge.ops.fallback"], case["edge.ops.unsupported"]) == ("1", "0")

    spec_project(_spec("topk.onnx", "rk3588", "ops: {fallback: 1}", backends="rknn"))
    pytester.runpytest("specs").assert_outcomes(passed=1)


# 2. spec errors


def test_a_negative_ops_bound_is_a_spec_error(pytester, spec_project, models):
    _nonzero_model(models / "peaks.onnx")
    spec_project(_spec("peaks.onnx", "rk3588", "ops: {unsupported: -1}", backends="rknn"))
    result = pytester.runpytest("specs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid spec: *model.yaml:7: targets.rk3588.budgets.ops.unsupported: "
                                 "a whole number of nodes, at least 0, e.g. 0; got -1*"])


def test_an_unknown_table_skips_naming_it_or_fails_under_strict(pytester, spec_project, models):
    _nonzero_model(models / "peaks.onnx")
    spec_project(_spec("peaks.onnx", "rk3588", "ops: {table: nosuch}", backends="rknn"))
    skipped = pytester.runpytest("specs", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["SKIPPED*no operator table named 'nosuch' (known: *rknn-rk3588*)*"])
    strict = pytester.runpytest("specs", "--edge-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*no operator table named 'nosuch'*--edge-strict turns this skip into a failure*"])


# 3. the host: the installed runtime's own registry


def test_a_host_ops_check_uses_the_installed_runtimes_registry(pytester, spec_project, models):
    _nonzero_model(models / "peaks.onnx")
    spec_project(_spec("peaks.onnx", "host", "ops: {unsupported: 0, constraint: 0}", backends="onnxruntime"))
    result = pytester.runpytest("specs", "--junitxml=report.xml")
    result.assert_outcomes(passed=1)
    case = _properties(pytester.path / "report.xml")["host-onnxruntime-none-ops"]
    import onnxruntime

    assert case["edge.ops.table"].startswith("onnxruntime-cpu: ")
    assert f"onnxruntime {onnxruntime.__version__}" in case["edge.ops.table"]
    assert "kernel registry" in case["edge.ops.table"]
    assert case["edge.ops.nodes"] == "3"


def test_a_table_the_spec_names_is_the_one_judged_on_the_host(pytester, spec_project, models):
    _nonzero_model(models / "peaks.onnx")
    spec_project(_spec("peaks.onnx", "host", "ops: {unsupported: 0, table: rknn-rk3588}", backends="onnxruntime"))
    result = pytester.runpytest("specs", "--junitxml=report.xml")
    case = _properties(pytester.path / "report.xml")["host-onnxruntime-none-ops"]
    assert case["edge.ops.table"].startswith("rknn-rk3588: ")
    result.assert_outcomes(failed=1)


# 4. latency from the cost model


# A project's device whose fp32 cost model is calibrated (a published point of its own), so that an estimate
# may pass or fail a budget; the built-in rk3588's float model is uncalibrated and can judge none.
LAB_NPU = """
name: lab-npu
compute: {tops: 1, unit: NPU}
backends:
  rknn:
    precisions: [fp32]
    ops: rknn-rk3588
    platform: rk3588
    estimate:
      fp32: {unit: npu, peak_tops: 0.5, bandwidth_gbs: 34.1, compute_efficiency: 0.5, bandwidth_efficiency: 0.3,
             node_overhead_us: 10, error_factor: 1.5, calibration: the lab's own figure,
             points: [{model: peaks, input: [1, 1, 8, 8], published_ms: 0.001, source: a test}]}
"""


def _lab_npu(pytester) -> Path:
    devices = pytester.path / "devices"
    devices.mkdir(exist_ok=True)
    (devices / "lab-npu.yaml").write_text(LAB_NPU)
    pytester.makeini("[pytest]\nedge_devices_dir = devices\n")
    return devices


def _estimate_ms(path, device: str = "rk3588", folder=None) -> tuple[float, float, float]:
    """The rknn estimate of a model on the device, as the plugin will compute it."""
    from edgecheck.analysis.costs import model_facts
    from edgecheck.analysis.estimate import estimate_latency
    from edgecheck.analysis.graph import analyse
    from edgecheck.devices import load_profiles

    profiles = load_profiles([folder]) if folder else load_profiles()
    estimate = estimate_latency(model_facts(analyse(path)), profiles[device], "rknn")
    return estimate.ms, estimate.low_ms, estimate.high_ms


def test_an_estimated_latency_budget_is_judged_without_a_board(pytester, spec_project, models):
    path = _conv_model(models / "peaks.onnx")
    ms, low, high = _estimate_ms(path, "lab-npu", _lab_npu(pytester))
    spec_project(_spec("peaks.onnx", "lab-npu", f"latency_ms: {{p50: {high * 1.01:.6g}, source: estimate}}",
                       backends="rknn"))
    passed = pytester.runpytest("specs", "--junitxml=report.xml")
    passed.assert_outcomes(passed=1)
    case = _properties(pytester.path / "report.xml")["lab-npu-rknn-none-latency"]
    assert float(case["edge.latency.estimate.p50"]) == pytest.approx(ms, rel=1e-6)
    assert float(case["edge.latency.estimate.p50.range_low"]) == pytest.approx(low, rel=1e-6)
    assert float(case["edge.latency.estimate.p50.range_high"]) == pytest.approx(high, rel=1e-6)
    assert "estimate" in case["edge.measured_on"] and "UNCALIBRATED" not in case["edge.measured_on"]
    assert "edge.latency.p50" not in case  # never a measured figure's name
    assert case["edge.estimate.precision"] == "fp32" and case["edge.verdict"] == "pass"

    spec_project(_spec("peaks.onnx", "lab-npu", f"latency_ms: {{p50: {low / 1.01:.6g}, source: estimate}}",
                       backends="rknn"))
    failed = pytester.runpytest("specs")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*latency.estimate.p50*stated error range*"])

    # a tail percentile is at least the typical time the estimate is of: it can fail, never pass
    spec_project(_spec("peaks.onnx", "lab-npu", f"latency_ms: {{p99: {high * 100:.6g}, source: estimate}}",
                       backends="rknn"))
    tail = pytester.runpytest("specs", "--junitxml=report.xml")
    tail.assert_outcomes(passed=1)
    case = _properties(pytester.path / "report.xml")["lab-npu-rknn-none-latency"]
    assert case["edge.verdict"] == "inconclusive" and case["edge.latency.estimate.p99.range_high"] == "inf"
    assert any("a tail percentile is at least the typical latency" in v for k, v in case.items()
               if k.startswith("edge.note."))


def test_an_uncalibrated_estimate_judges_no_budget(pytester, spec_project, models):
    """rk3588's float cost model has no published figure to fit or validate it: whatever the budget, far above
    or far below its estimate, the verdict is inconclusive, saying why (issue 17)."""
    path = _conv_model(models / "peaks.onnx")
    ms, low, high = _estimate_ms(path)
    for limit in (high * 100, low / 100):
        spec_project(_spec("peaks.onnx", "rk3588", f"latency_ms: {{p95: {limit:.6g}, source: estimate}}",
                           backends="rknn"))
        result = pytester.runpytest("specs", "--junitxml=report.xml")
        result.assert_outcomes(passed=1)
        case = _properties(pytester.path / "report.xml")["rk3588-rknn-none-latency"]
        assert case["edge.verdict"] == "inconclusive"
        assert "UNCALIBRATED" in case["edge.measured_on"]
        result.stdout.fnmatch_lines(["*cost model has no published figures*uncalibrated*order of magnitude only*"])


def test_a_budget_inside_the_estimates_range_is_inconclusive(pytester, spec_project, models):
    path = _conv_model(models / "peaks.onnx")
    ms, low, high = _estimate_ms(path, "lab-npu", _lab_npu(pytester))
    assert low < ms < high
    spec_project(_spec("peaks.onnx", "lab-npu", f"latency_ms: {{p95: {ms:.6g}, source: estimate}}", backends="rknn"))
    warned = pytester.runpytest("specs", "--junitxml=report.xml")
    warned.assert_outcomes(passed=1, warnings=1)
    warned.stdout.fnmatch_lines(["*InconclusiveWarning: p95 estimate *, budget ≤ *: the budget lies within*"])
    assert _properties(pytester.path / "report.xml")["lab-npu-rknn-none-latency"]["edge.verdict"] == "inconclusive"

    strict = pytester.runpytest("specs", "--edge-inconclusive=fail")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*latency verdict inconclusive*"])


def test_without_source_estimate_a_device_latency_budget_cannot_be_judged(pytester, spec_project, models):
    _nonzero_model(models / "peaks.onnx")
    spec_project(_spec("peaks.onnx", "rk3588", "latency_ms: {p95: 1000}", backends="rknn, onnxruntime"))
    result = pytester.runpytest("specs", "-rs")
    # onnxruntime: the reason is the missing board, with the way out. rknn runs .rknn files only; on an
    # ONNX model it judges only what reads the graph (ops, an estimated latency), so nothing is planned
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*cannot judge rk3588 latency here: no rk3588 to measure on*"
                                 "source: estimate for the cost model's estimate*"])
