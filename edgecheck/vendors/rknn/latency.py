"""The latency of a .rknn artifact, judged on what rknn-toolkit2's compiler said when it built it: the fitted
compiler model (compiler_model.py) for its NPU layers, the device CPU's cost model for the few cheap layers
it leaves to the CPU, and the analytical cost model's estimate of the same network beside it. Never a
measurement, and labelled so; a lower bound wherever something is not counted.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from edgecheck.analysis.costs import COMPUTE, EPILOGUE, FREE, MOVEMENT, NO_COST_FORMULA, PER_ELEMENT, POOLS, REDUCTIONS
from edgecheck.analysis.estimate import LatencyEstimate
from edgecheck.checks.performance import judge_latency_estimate
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.devices import CostModel, DeviceProfile
from edgecheck.errors import CannotJudge
from edgecheck.spec.performance import LatencyBudget
from edgecheck.vendors.rknn.build_log import RknnLayer, shape_elements
from edgecheck.vendors.rknn.checks import BuildReport
from edgecheck.vendors.rknn.compiler_model import features, predict

LAYER_BYTES = {"INT8": 1, "UINT8": 1, "INT16": 2, "FLOAT16": 2, "BFLOAT16": 2, "INT32": 4, "FLOAT": 4,
               "FLOAT32": 4, "INT64": 8}
# The CPU cost model is uncalibrated (its error was never measured): its time is added only where even its
# upper end is this small a share of the NPU's, so its error cannot move a verdict; else a lower bound.
CPU_SHARE = 0.02
RECURRENT = re.compile(r"LSTM|GRU|RNN|Attention|Einsum|Loop|Scan", re.IGNORECASE)
# Ops whose CPU time is bytes through memory and a few operations per element (no weights the table omits)
CPU_COSTABLE = (MOVEMENT | FREE | EPILOGUE | POOLS | REDUCTIONS | set(PER_ELEMENT)
                | {"Add", "Sub", "Mul", "Div", "Cast", "Max", "Min", "Abs", "Neg", "Equal", "Greater", "Less",
                   "Not", "And", "Or", "Floor", "Ceil", "Round", "Sign", "Reciprocal"}) - set(COMPUTE) - NO_COST_FORMULA


def cpu_cost_model(device: DeviceProfile) -> CostModel | None:
    """The device CPU's float cost model (any backend's fp32 model whose unit is the CPU): the runtime runs the
    layers the compiler leaves to the CPU there."""
    for support in device.backends.values():
        model = support.estimate.get("fp32")
        if model is not None and model.unit == "cpu":
            return model
    return None


def cpu_layer_ms(layer: RknnLayer, model: CostModel) -> float | None:
    """One CPU layer's time by the CPU's cost model, from the shapes and data type the layer table gives: its
    bytes read and written (the NPU's output comes through memory) and its arithmetic. None where the table
    cannot tell: a shape cut short, an unknown data type, or an op that is not cheap element-wise or data
    movement (a convolution, matrix product or recurrent layer, whose weights and work the table omits)."""
    inputs, outputs = shape_elements(layer.input_shape), shape_elements(layer.output_shape)
    element = LAYER_BYTES.get(layer.dtype.upper())
    if inputs is None or outputs is None or element is None or layer.source_op not in CPU_COSTABLE:
        return None
    memory = (inputs + outputs) * element / (model.bandwidth_gbs * 1e9 * model.bandwidth_efficiency)
    compute = outputs * PER_ELEMENT.get(layer.source_op, 1) / (model.peak_tops * 1e12 * model.compute_efficiency)
    return (max(memory, compute) + model.node_overhead_us * 1e-6) * 1e3


def cpu_time(cpu: list[RknnLayer], device: DeviceProfile) -> tuple[float, float, float] | str:
    """The CPU layers' time (estimate, low, high) by the device CPU's cost model, or why it cannot be had."""
    model = cpu_cost_model(device)
    if model is None:
        return f"{device.name}'s profile has no CPU cost model (an fp32 estimate with unit cpu) to estimate them with"
    times = [cpu_layer_ms(layer, model) for layer in cpu]
    unknown = [layer.full_name for layer, ms in zip(cpu, times) if ms is None]
    if unknown:
        return f"the layer table does not give what their time needs ({', '.join(unknown[:5])})"
    total = sum(t for t in times if t is not None)
    return total, total / model.error_factor, total * model.error_factor


def _unjudgeable(report: BuildReport, toolkit: str) -> str:
    """Why the compiler model may judge no bound of this build ("" where it may)."""
    if not report.quantized:
        return ("the compiler model was fitted on INT8 builds only; a float16 .rknn's cycles were never checked "
                "against a published figure, so its estimate is an order of magnitude only")
    if report.toolkit.split(".")[:2] != toolkit.split(".")[:2]:
        return (f"the compiler model was fitted on rknn-toolkit2 {toolkit}'s cycle counts; this artifact was built by "
                f"{report.toolkit}, whose counts were never checked against a published figure")
    return ""


def judge_rknn_latency(report: BuildReport, device: DeviceProfile, backend: str, budget: LatencyBudget,
                       cost_model_estimate: LatencyEstimate | str | None = None) -> CheckResult:
    """The compiler model's estimate with its stated error range; the layers left to the CPU (which the compiler
    counts as 0 cycles) added by the device CPU's cost model where they are a negligible share, else a lower
    bound. `cost_model_estimate`: the cost model's estimate of the same network (or why there is none), shown
    beside it; the compiler's decides, but where the two disagree outright a bound they judge differently is
    inconclusive."""
    support = device.backends.get(backend)
    options = support.options if support is not None else None
    # read by name: the options model may come from another import of this module (a session per pytester run)
    model = getattr(options, "compiler_estimate", None)
    if model is None:
        raise CannotJudge(f"{device.name}'s profile has no compiler_estimate for {backend}: the compiler's cycles "
                          "cannot be turned into time without a calibration")
    cycles = report.log.cycles_total
    found = features(report.log, model.clock_ghz)
    ms = predict(model.coefficients, found)
    low, high = ms / model.error_factor, ms * model.error_factor
    smallest = min((p.cycles for p in model.fitted), default=0)
    below = not smallest or cycles < smallest
    cpu = report.log.cpu_layers()
    cpu_part = cpu_time(cpu, device) if cpu else (0.0, 0.0, 0.0)
    uncounted = ""
    if isinstance(cpu_part, str):
        uncounted = cpu_part
    elif cpu:
        cpu_ms, cpu_low, cpu_high = cpu_part
        if cpu_high > CPU_SHARE * ms:
            uncounted = (f"their estimated {cpu_ms:.3g} ms (up to {cpu_high:.3g} ms) is over {CPU_SHARE:.0%} of the "
                         f"NPU's {ms:.3g} ms, too much to add from the CPU cost model, whose error no published figure "
                         "has measured")
        else:
            ms, low, high = ms + cpu_ms, low + cpu_low, high + cpu_high
    blind = [layer for layer in report.log.layers if not layer.boundary and layer.target != "CPU"
             and layer.cycles_total == 0 and (layer.source_op in COMPUTE or layer.source_op in NO_COST_FORMULA
                                              or RECURRENT.search(layer.op_type))]
    if blind:
        uncounted = uncounted or (f"the compiler counts 0 cycles for {len(blind)} NPU layers that do real work "
                                  f"({', '.join(layer.full_name or layer.op_type for layer in blind[:3])}): their "
                                  "time is not counted")
    if found.unread:
        uncounted = uncounted or (f"the layer table cuts short the output shape of {len(found.unread)} activation "
                                  f"layers ({', '.join(found.unread[:3])}), whose cost is then not counted")
    if below or uncounted:  # time the estimate does not count: it bounds latency from below only, and what
        low, high = ms, math.inf  # it counts is its lower end (never a lower end below the estimate itself)
    result = judge_latency_estimate(ms, low, high, budget, "lower bound" if math.isinf(high) else "stated error range",
                                    cannot_judge=_unjudgeable(report, model.toolkit))
    result.notes[-1] = ("the compiler's estimate, not a measurement: rknn-toolkit2's per-layer cycle counts, summed, "
                        f"at {model.clock_ghz:g} GHz, times {model.scale:.3g}, plus {model.rw_ms_per_mb:.3g} ms per MiB "
                        f"its layer table moves ({found.rw_mb:.3g} MiB) and {model.activation_ms_per_melement:.3g} ms per "
                        f"million sigmoid-like activations ({found.activation_melements:.3g} M) ({model.calibration}); "
                        f"each bound is compared with it and with its stated error range (x/÷{model.error_factor:g})")
    if not smallest:
        result.notes.append("the profile's compiler_estimate names no calibration point: the estimate is a lower "
                            "bound only")
    elif below:
        result.notes.append(f"{cycles} cycles is below the smallest model the compiler model was fitted on ({smallest} "
                            "cycles): the runtime's fixed cost per inference and per layer, which the compiler does not "
                            "count, weighs more here, so the estimate is a lower bound only (a bound above it is "
                            "inconclusive)")
    result.measurements.append(Measurement("latency.estimate.cycles", float(cycles), "cycles"))
    npu = [layer for layer in report.log.layers if not layer.boundary]
    result.facts.update({
        "estimate.ms": f"{ms:.4g}",
        "estimate.range_ms": f"{low:.4g}..{high:.4g}",
        "estimate.cycles": f"{cycles} (DDR {sum(x.cycles_ddr for x in npu)}, NPU {sum(x.cycles_npu for x in npu)}; "
                           f"{len(npu)} layers)",
        "estimate.calibration": model.calibration,
        "measured_on": f"estimate, not a measurement: {report.who}'s cycle estimate, calibrated for {device.name}",
    })
    if cpu:
        names = ", ".join(layer.full_name for layer in cpu[:5]) + (f" and {len(cpu) - 5} more" if len(cpu) > 5 else "")
        if isinstance(cpu_part, str) or math.isinf(high) and uncounted:
            result.notes.append(f"{len(cpu)} layers run on the CPU ({names}), which the compiler counts as 0 cycles"
                                + (f", and {uncounted}: the estimate leaves their time out, so it is a lower bound only"
                                   if uncounted else ""))
        else:
            result.notes.append(f"{len(cpu)} layers run on the CPU ({names}), which the compiler counts as 0 cycles: "
                                f"their time, {cpu_part[0]:.3g} ms (range {cpu_part[1]:.3g}..{cpu_part[2]:.3g}, by "
                                f"{device.name}'s uncalibrated CPU cost model from the layer table's shapes), is under "
                                f"{CPU_SHARE:.0%} of the NPU's and added")
            result.facts["estimate.cpu_ms"] = f"{cpu_part[0]:.4g}"
    elif uncounted:
        result.notes.append(uncounted + ": the estimate is a lower bound only")
    if cost_model_estimate is not None:
        note_cost_model_estimate(result, cost_model_estimate, (low, high))
    return result


def note_cost_model_estimate(result: CheckResult, estimate: LatencyEstimate | str, deciding: tuple[float, float]) -> None:
    """The cost model's estimate of the same network as a note; where its calibrated range and the compiler's
    do not overlap, a bound the two would judge oppositely (one passes it, the other fails it) is inconclusive."""
    if isinstance(estimate, str):
        result.notes.append(f"no cost-model estimate to set beside the compiler's: {estimate}")
        return
    low, high = deciding
    result.facts["estimate.cost_model_ms"] = f"{estimate.ms:.4g}"
    result.facts["estimate.cost_model_range_ms"] = f"{estimate.low_ms:.4g}..{estimate.high_ms:.4g}"
    how = "calibrated" if estimate.calibrated else "UNCALIBRATED, so it judges nothing"
    result.notes.append(f"the cost model's estimate of the same network ({estimate.precision}, {how}): "
                        f"{estimate.ms:.3g} ms, range {estimate.low_ms:.3g}..{estimate.high_ms:.3g}; for a .rknn the "
                        "compiler's estimate decides")
    if not estimate.calibrated or (estimate.low_ms <= high and low <= estimate.high_ms):
        return
    result.notes.append(f"the two estimates disagree: the compiler's range {low:.3g}..{high:.3g} ms and the cost model's "
                        f"{estimate.low_ms:.3g}..{estimate.high_ms:.3g} ms do not overlap")
    for index, measurement in enumerate(result.measurements):
        if not measurement.judged or measurement.verdict not in ("pass", "fail"):
            continue
        limit = measurement.budget
        assert limit is not None
        other = "pass" if estimate.high_ms <= limit else ("fail" if estimate.low_ms > limit else "inconclusive")
        if other != measurement.verdict:
            result.measurements[index] = replace(measurement, cannot_judge=(
                f"the compiler's estimate says {measurement.verdict}, the cost model's (whose range does not overlap "
                f"it) says {other}: neither range can be trusted here"))
