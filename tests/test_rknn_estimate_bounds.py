"""The compiler's latency estimate as a lower bound (issue 17, defect 4): where the compiler leaves time out
(CPU layers, a model below the calibration's smallest), the estimate is the range's lower end, never above it."""

from __future__ import annotations

import math
from pathlib import Path

from edgecheck.devices import load_profiles
from edgecheck.spec.performance import LatencyBudget
from edgecheck.vendors.rknn.build_log import BuildLog, RknnLayer
from edgecheck.vendors.rknn.checks import BuildReport, judge_rknn_latency


def report(cycles: int, cpu_layer: bool) -> BuildReport:
    layers = [RknnLayer(1, "ConvRelu", "INT8", "NPU", "1x3x224x224", "1x32x112x112", cycles // 2, cycles // 2, cycles,
                        100, "Conv:conv1")]
    if cpu_layer:
        layers.append(RknnLayer(2, "Reshape", "INT8", "CPU", "1x1280x1x1", "1x1280", 0, 0, 0, 5, "Reshape:flatten"))
    return BuildReport("2.5.0", "rk3588", True, BuildLog(tuple(layers), 1 << 20, 1 << 20), Path("model.onnx"))


def test_a_lower_bound_starts_at_the_estimate():
    device = load_profiles()["rk3588"]
    for cycles, cpu in ((1_000, False), (5_930_258, True)):  # below the smallest calibration point; a CPU layer
        result = judge_rknn_latency(report(cycles, cpu), device, "rknn", LatencyBudget(p50=1000.0, source="estimate"))
        estimate = float(result.facts["estimate.ms"])
        low, high = (float(x) for x in result.facts["estimate.range_ms"].split(".."))
        assert high == math.inf and low == estimate, result.facts
        judged = [m for m in result.measurements if m.judged]
        assert judged and all(m.interval[0] == m.value for m in judged)
        assert all(m.verdict == "inconclusive" for m in judged)  # a bound above it cannot pass on a lower bound


def test_a_plain_estimate_keeps_its_stated_range():
    device = load_profiles()["rk3588"]
    result = judge_rknn_latency(report(5_930_258, False), device, "rknn", LatencyBudget(p50=1000.0, source="estimate"))
    estimate = float(result.facts["estimate.ms"])
    low, high = (float(x) for x in result.facts["estimate.range_ms"].split(".."))
    assert math.isclose(low * high, estimate ** 2, rel_tol=1e-3) and high < math.inf
