"""The compiler's latency estimate of a .rknn (issue 17): where it leaves time out that nothing estimates (a
model below the calibration's smallest, a CPU layer the table cannot cost), the estimate is the range's lower
end, never above it (defect 4); a CPU layer the table does describe is costed by the device CPU's cost model
and added, so one Reshape on the CPU no longer makes a classifier a lower bound (defect 2); the cost model's
estimate of the same network stands beside it, and where the two disagree outright they judge nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgecheck.analysis.calibrate import error_factor
from edgecheck.analysis.estimate import LatencyEstimate
from edgecheck.devices import load_profiles
from edgecheck.spec.performance import LatencyBudget
from edgecheck.vendors.rknn.build_log import BuildLog, RknnLayer
from edgecheck.vendors.rknn import compiler_model as estimate
from edgecheck.vendors.rknn.checks import BuildReport
from edgecheck.vendors.rknn.latency import judge_rknn_latency


RESHAPE = RknnLayer(2, "Reshape", "FLOAT16", "CPU", "(1,1280,1,1),(2)", "(1,1280)", 0, 0, 0, 5, "Reshape:flatten")


def report(cycles: int, *more: RknnLayer) -> BuildReport:
    layers = [RknnLayer(1, "ConvRelu", "INT8", "NPU", "(1,3,224,224)", "(1,32,112,112)", cycles // 2, cycles // 2,
                        cycles, 100, "Conv:conv1"), *more]
    return BuildReport("2.5.0", "rk3588", True, BuildLog(tuple(layers), 1 << 20, 1 << 20), Path("model.onnx"))


def judged(rep: BuildReport, p50: float = 1000.0, second=None):
    result = judge_rknn_latency(rep, load_profiles()["rk3588"], "rknn", LatencyBudget(p50=p50, source="estimate"),
                                cost_model_estimate=second)
    low, high = (float(x) for x in result.facts["estimate.range_ms"].split(".."))
    return result, float(result.facts["estimate.ms"]), low, high


def test_a_lower_bound_starts_at_the_estimate():
    cut_short = RknnLayer(3, "TopK", "INT8", "CPU", "(1,10,1,1),(1)", "(1,3,1,1),...", 0, 0, 0, 0, "TopK:values")
    conv_on_cpu = RknnLayer(3, "Conv", "FLOAT16", "CPU", "(1,64,56,56)", "(1,64,56,56)", 0, 0, 0, 0, "Conv:c9")
    huge = RknnLayer(3, "Softmax", "FLOAT16", "CPU", "(1,1000,640,640)", "(1,1000,640,640)", 0, 0, 0, 0, "Softmax:sm")
    # below the smallest calibration point; CPU layers whose time the table cannot give, or too large a share
    for rep in (report(1_000), report(5_930_258, cut_short), report(5_930_258, conv_on_cpu),
                report(5_930_258, huge)):
        result, estimate, low, high = judged(rep)
        assert high == math.inf and low == estimate, result.facts
        bounds = [m for m in result.measurements if m.judged]
        assert bounds and all(m.interval[0] == m.value for m in bounds)
        assert all(m.verdict == "inconclusive" for m in bounds)  # a bound above it cannot pass on a lower bound


def test_a_plain_estimate_keeps_its_stated_range():
    result, estimate, low, high = judged(report(5_930_258))
    assert math.isclose(low * high, estimate ** 2, rel_tol=1e-3) and high < math.inf


def test_a_cpu_layer_is_costed_by_the_cpu_model_not_made_a_lower_bound():
    """Defect 2: MobileNetV2's one Reshape on the CPU made every Gemm classifier a lower bound. The CPU's cost model
    is uncalibrated, so its time is added only where even its upper end is a negligible share of the NPU's."""
    plain, npu_ms, npu_low, npu_high = judged(report(5_930_258))
    result, estimate, low, high = judged(report(5_930_258, RESHAPE))
    cpu_ms = float(result.facts["estimate.cpu_ms"])
    assert 0 < cpu_ms < 0.01 * npu_ms  # a copy of 1280 halves and a CPU op's overhead: microseconds
    assert estimate == pytest.approx(npu_ms + cpu_ms, rel=1e-3)
    assert npu_low < low < estimate < high < math.inf and high > npu_high
    assert any("uncalibrated CPU cost model" in n and "added" in n for n in result.notes), result.notes
    assert judged(report(5_930_258, RESHAPE), p50=high * 1.05)[0].measurements[0].verdict == "pass"
    # the same layer beside a small NPU part: its unmeasured error could move the verdict, so a lower bound
    small, estimate, low, high = judged(report(1_312_664, RESHAPE))
    assert (low, high) == (estimate, math.inf)
    assert any("too much to add from the CPU cost model" in n for n in small.notes), small.notes


def test_a_float16_rknn_or_another_toolkit_version_is_not_judged_on_the_int8_fit():
    from dataclasses import replace

    fp16 = replace(report(5_930_258), quantized=False)
    result, *_ = judged(fp16, p50=1e6)
    assert result.measurements[0].verdict == "inconclusive"
    assert "fitted on INT8 builds only" in result.measurements[0].cannot_judge
    other = replace(report(5_930_258), toolkit="2.3.2")
    result, *_ = judged(other, p50=1e6)
    assert "rknn-toolkit2 2.5.0's cycle counts" in result.measurements[0].cannot_judge


def test_an_activation_layer_whose_shape_is_cut_short_makes_a_lower_bound():
    cut = RknnLayer(3, "ConvExSwish", "INT8", "NPU", "(1,32,40,40)", "(1,32,40,40),...", 0, 0, 100, 10, "Conv:c3")
    result, estimate, low, high = judged(report(5_930_258, cut))
    assert (low, high) == (estimate, math.inf)
    assert any("cuts short the output shape" in n for n in result.notes), result.notes


def test_the_layer_table_shape_parser_refuses_what_it_cannot_read():
    from edgecheck.vendors.rknn.build_log import shape_elements

    assert shape_elements("(1,10,1,1),(2)") == 12
    assert shape_elements("(1,3,1,1),...") is None
    assert shape_elements("(1,-1)") is None and shape_elements("\\") is None
    assert shape_elements("()") == 1  # a scalar


def _cost_model(ms: float, factor: float, calibrated: bool = True) -> LatencyEstimate:
    return LatencyEstimate(ms, ms / factor, ms * factor, "rk3588", "rknn", "int8", ms, 0.0, 0.0, 10, "a test",
                           calibrated)


def test_the_cost_models_estimate_stands_beside_the_compilers_and_a_contradiction_judges_nothing():
    _, estimate, low, high = judged(report(5_930_258))
    budget = high * 1.1  # the compiler's range passes it
    agreeing, *_ = judged(report(5_930_258), budget, _cost_model(estimate * 1.05, 1.3))
    assert agreeing.measurements[0].verdict == "pass"
    assert any("for a .rknn the compiler's estimate decides" in n for n in agreeing.notes)
    assert float(agreeing.facts["estimate.cost_model_ms"]) == pytest.approx(estimate * 1.05, rel=1e-3)

    contradicting, *_ = judged(report(5_930_258), budget, _cost_model(budget * 3, 1.3))  # fails it outright
    measurement = contradicting.measurements[0]
    assert measurement.verdict == "inconclusive" and "cost model's" in measurement.cannot_judge
    assert any("the two estimates disagree" in n for n in contradicting.notes)

    uncalibrated, *_ = judged(report(5_930_258), budget, _cost_model(budget * 3, 3.0, calibrated=False))
    assert uncalibrated.measurements[0].verdict == "pass"  # an unmeasured error overrides nothing
    assert any("UNCALIBRATED" in n for n in uncalibrated.notes)

    missing, *_ = judged(report(5_930_258), budget, "shape inference failed")
    assert missing.measurements[0].verdict == "pass"
    assert any("no cost-model estimate" in n for n in missing.notes)


COMPILER_DEVICES = [name for name, profile in load_profiles().items() if "rknn" in profile.backends
                    and getattr(profile.backends["rknn"].options, "compiler_estimate", None) is not None]
CANDIDATES = [(True, False, False), (True, True, False), (True, False, True), (True, True, True)]


def _stored_rows(device: str):
    model = load_profiles()[device].backends["rknn"].options.compiler_estimate
    rows = {"fit": [], "validate": []}
    for p in model.points:
        features = estimate.CompilerFeatures(p.cycles / (model.clock_ghz * 1e6), p.rw_mb, p.activation_melements)
        rows[p.role].append((features, p.published_ms - p.cpu_ms))  # the CPU layers' part, as the fit took it off
    return model, rows


@pytest.mark.parametrize("device", COMPILER_DEVICES)
def test_the_compiler_estimate_is_fitted_on_some_published_points_and_holds_the_others(device):
    """The coefficients are the fit of the fit rows, with the terms whose leave-one-out miss is smallest; the stated
    range is their leave-one-out error; the rows the fit never saw lie inside it, with a median error within issue
    17's 20 %, and none would pass a budget at its published figure."""
    assert {"rk3588", "rk3566", "rk3568", "rk3562"} <= set(COMPILER_DEVICES)
    model, rows = _stored_rows(device)
    assert len(rows["fit"]) >= 8 and len(rows["validate"]) >= 5
    best = min(CANDIDATES, key=lambda use: max(map(abs, estimate.leave_one_out(rows["fit"], use))))
    assert estimate.fit(rows["fit"], best) == pytest.approx(model.coefficients, rel=0.005, abs=1e-6)
    assert error_factor(estimate.leave_one_out(rows["fit"], best)) == pytest.approx(model.error_factor, abs=0.01)
    errors = []
    for features, published in rows["validate"]:
        predicted = estimate.predict(model.coefficients, features)
        assert published / model.error_factor <= predicted <= published * model.error_factor
        errors.append(abs(predicted / published - 1))
    assert sorted(errors)[len(errors) // 2] <= 0.20
    # the single scale this replaced is worse out of sample: the per-layer terms earn their place
    single = estimate.leave_one_out(rows["fit"], (True, False, False))
    assert max(map(abs, single)) > max(map(abs, estimate.leave_one_out(rows["fit"], best)))


def test_a_silu_network_costs_more_than_its_relu_twin_at_identical_cycles():
    """The compiler gives SiLU and ReLU variants of one network the same cycles; the published times differ by
    half (yolov5s 23.5 ms, yolov5s_relu 15.8 ms): the activations it fuses are costed apart."""
    def layer(op):
        return RknnLayer(1, op, "INT8", "NPU", "(1,32,160,160),(32,32,3,3),(32)", "(1,32,160,160)", 0, 0,
                         5_000_000, 800, "Conv:c")
    silu, *_ = judged(report(5_930_258, layer("ConvExSwish")))
    relu, *_ = judged(report(5_930_258, layer("ConvRelu")))
    assert float(silu.facts["estimate.ms"]) > float(relu.facts["estimate.ms"])
    assert "sigmoid-like activations (0.819 M)" in silu.notes[0]  # 32 x 160 x 160 outputs, in millions


def test_a_range_that_cannot_be_read_judges_nothing():
    """A NaN end (a profile's error_factor of inf on a 0 ms estimate) never falls back to the point value."""
    from edgecheck.checks.performance import judge_latency_estimate

    result = judge_latency_estimate(0.0, 0.0, math.nan, LatencyBudget(p50=1.0, source="estimate"))
    assert result.measurements[0].verdict == "inconclusive"
    assert "cannot be computed" in result.measurements[0].cannot_judge


def test_an_npu_layer_the_compiler_gives_no_cycles_for_real_work_makes_a_lower_bound():
    """rknn-toolkit2 puts an LSTM on the NPU as exLSTM with 0 cycles: its time is not in the estimate, so a budget
    above it cannot pass (a new user's CNN+LSTM passed 5 ms on 3.2 ms before)."""
    lstm = RknnLayer(3, "exLSTM", "INT8", "NPU", "(49,1,256)", "(49,1,1,256)", 0, 0, 0, 900, "LSTM:lstm")
    result, estimate, low, high = judged(report(5_930_258, lstm), p50=1000.0)
    assert (low, high) == (estimate, math.inf)
    assert result.measurements[0].verdict == "inconclusive"
    assert any("0 cycles for 1 NPU layers that do real work (LSTM:lstm)" in n for n in result.notes), result.notes
    add = RknnLayer(3, "Add", "INT8", "NPU", "(1,32,40,40),(1,32,40,40)", "(1,32,40,40)", 0, 0, 0, 100, "Add:a")
    assert judged(report(5_930_258, add))[3] < math.inf  # an Add's 0 cycles are its bytes, which the model counts
