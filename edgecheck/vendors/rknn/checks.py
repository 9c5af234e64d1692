"""The ops, latency and memory budgets of a `.rknn` artifact, judged on what Rockchip's compiler said
when it built it (the build report beside the artifact): where each layer runs, its cycle estimate and
its memory totals. These are the compiler's figures, labelled so, never measurements.

Ops: the build is the authority for what the NPU takes (a refused build already failed the entry);
every layer the compiler put on the CPU counts as a fallback. The shipped rknn table's verdict on the
source ONNX graph is checked against it, and where they differ the disagreement is noted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from edgecheck.analysis.costs import COMPUTE, PER_ELEMENT
from edgecheck.analysis.estimate import LatencyEstimate
from edgecheck.analysis.ops import NodeVerdict, OpsReport
from edgecheck.analysis.optable import OpTable
from edgecheck.vendors.rknn.build_log import BuildLog, RknnLayer
from edgecheck.vendors.rknn.estimate import features, predict
from edgecheck.vendors.rknn.backend import build_dir, read_report
from edgecheck.vendors.rknn.toolkit import read_job
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.performance import judge_latency_estimate
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.devices import CostModel, DeviceProfile
from edgecheck.errors import CannotJudge
from edgecheck.spec.ops import OpsBudget
from edgecheck.spec.performance import LatencyBudget, MemoryBudget

MIB = 2**20
LAYER_BYTES = {"INT8": 1, "UINT8": 1, "INT16": 2, "FLOAT16": 2, "BFLOAT16": 2, "INT32": 4, "FLOAT": 4,
               "FLOAT32": 4, "INT64": 8}
CPU_SHARE = 0.25  # above this share of the NPU time, an uncalibrated CPU estimate would decide: a lower bound only
_SHAPE = re.compile(r"\(([\d,]*)\)")


@dataclass(frozen=True)
class CompiledLayer:
    """A layer of the compiled model, shaped like a graph node for the ops report."""

    name: str
    key: str
    where: str = ""

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class BuildReport:
    toolkit: str
    platform: str
    quantized: bool
    log: BuildLog
    source: Path  # the ONNX copy the build read

    @property
    def who(self) -> str:
        return f"rknn-toolkit2 {self.toolkit} building for {self.platform}"


def read_build_report(artifact: Path) -> BuildReport:
    """The build report of a .rknn artifact; CannotJudge where it has none or it holds no layer table."""
    folder = build_dir(artifact)
    try:
        data = read_report(artifact)
        if data is None:
            raise OSError("missing or not JSON")
        job = read_job(folder)
        report = BuildReport(data["toolkit"], data["platform"], bool(data["quantized"]),
                             BuildLog.from_json(data["build"]), folder / job["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CannotJudge(f"{artifact.name} has no readable build report ({folder.name}/report.json: {exc}); "
                          "only .rknn files built by edgecheck's rknn recipes carry the compiler's figures") from None
    if not report.log.layers:
        raise CannotJudge(f"the toolkit's build log of {artifact.name} holds no layer table that edgecheck could "
                          f"read (see {folder / 'stdout.log'}): placement, cycles and memory are unknown")
    return report


def placement_report(report: BuildReport, table: OpTable, onnx_verdicts: list[NodeVerdict]) -> tuple[OpsReport, list[str]]:
    """Each compiled layer as supported (NPU) or fallback (CPU), and where the shipped table's verdict on
    the source graph disagrees with the compiler's placement. A layer is traced to its ONNX node by the
    name the toolkit gives it (the node's or its output tensor's)."""
    by_name: dict[str, NodeVerdict] = {}
    for verdict in onnx_verdicts:
        by_name.setdefault(verdict.node.name, verdict)
        for output in verdict.node.proto.output:
            by_name.setdefault(output, verdict)
    verdicts, mapped, disagreements = [], set(), []
    for layer in report.log.layers:
        if layer.boundary:
            continue
        source = by_name.get(layer.source_name)
        origin = (f"from ONNX {source.node.op_type} {source.node.name!r}" if source is not None
                  else "a layer the toolkit added")
        node = CompiledLayer(layer.full_name or f"layer {layer.index}", layer.op_type)
        if layer.target == "CPU":
            verdicts.append(NodeVerdict(node, "fallback", f"the compiler placed it on the CPU ({layer.dtype}; "  # type: ignore[arg-type]
                                        f"{origin})", report.who))
        else:
            verdicts.append(NodeVerdict(node, "supported", f"{layer.target} ({layer.dtype}; {origin})",  # type: ignore[arg-type]
                                        report.who))
        if source is not None:
            mapped.add(source.node.label)
            if layer.target == "CPU" and source.status == "supported":
                disagreements.append(f"{source.node.label} ({source.node.key}): {table.name} says supported, the "
                                     f"compiler placed its layer {layer.full_name} on the CPU")
    for verdict in onnx_verdicts:
        if verdict.status in ("unsupported", "fallback"):
            disagreements.append(f"{verdict.node.label} ({verdict.node.key}): {table.name} says {verdict.status} "
                                 f"({verdict.reason}), yet {report.who} built the model"
                                 + ("" if verdict.node.label in mapped else " (the node was folded or fused away)"))
    return OpsReport(table, verdicts), disagreements


def judge_rknn_ops(report: BuildReport, table: OpTable, onnx_verdicts: list[NodeVerdict], budget: OpsBudget) -> CheckResult:
    ops, disagreements = placement_report(report, table, onnx_verdicts)
    result = judge_ops(ops, budget, disagreements)
    result.facts["ops.table"] = (f"{report.who}: the compiler's placement of each layer (the authority), checked "
                                 f"against {table.name}: {table.citation()}")
    result.facts["measured_on"] = f"nowhere: {report.who}'s build log (no run)"
    return result


def cpu_cost_model(device: DeviceProfile) -> CostModel | None:
    """The device CPU's float cost model (any backend's fp32 model whose unit is the CPU): the runtime runs the
    layers the compiler leaves to the CPU there."""
    for support in device.backends.values():
        model = support.estimate.get("fp32")
        if model is not None and model.unit == "cpu":
            return model
    return None


def _elements(shapes: str) -> int | None:
    """Elements of every tensor in a layer table's shape column, "(1,10,1,1),(2)"; None where it is cut
    short ("...") or holds no shape."""
    found = _SHAPE.findall(shapes)
    if not found or "..." in shapes:
        return None
    return sum(math.prod(int(d) for d in dims.split(",") if d) for dims in found)


def cpu_layer_ms(layer: RknnLayer, model: CostModel) -> float | None:
    """One CPU layer's time by the CPU's cost model, from the shapes and data type the layer table gives: its
    bytes read and written (the NPU's output comes through memory) and its arithmetic. None where the table
    cannot tell (a shape cut short, an unknown data type, a convolution or matrix product whose weights it
    does not list)."""
    inputs, outputs = _elements(layer.input_shape), _elements(layer.output_shape)
    element = LAYER_BYTES.get(layer.dtype.upper())
    if inputs is None or outputs is None or element is None or layer.source_op in COMPUTE:
        return None
    memory = (inputs + outputs) * element / (model.bandwidth_gbs * 1e9 * model.bandwidth_efficiency)
    compute = outputs * PER_ELEMENT.get(layer.source_op, 1) / (model.peak_tops * 1e12 * model.compute_efficiency)
    return (max(memory, compute) + model.node_overhead_us * 1e-6) * 1e3


def _cpu_time(cpu: list[RknnLayer], device: DeviceProfile) -> tuple[float, float, float] | str:
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


def judge_rknn_latency(report: BuildReport, device: DeviceProfile, backend: str, budget: LatencyBudget,
                       second: LatencyEstimate | str | None = None) -> CheckResult:
    """Total cycles at the NPU clock, times the profile's fitted scale, with its stated error range; the
    layers left to the CPU (which the compiler counts as 0 cycles) added by the device CPU's cost model.
    `second`: the cost model's estimate of the same network (or why there is none), shown beside it; the
    compiler's decides, but where the two disagree outright a bound they judge differently is inconclusive."""
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
    cpu_time = _cpu_time(cpu, device) if cpu else (0.0, 0.0, 0.0)
    uncounted = ""
    if isinstance(cpu_time, str):
        uncounted = cpu_time
    elif cpu:
        cpu_ms, cpu_low, cpu_high = cpu_time
        if cpu_high > CPU_SHARE * ms:
            uncounted = (f"their estimated {cpu_ms:.3g} ms (up to {cpu_high:.3g} ms) is too large a share of the NPU's "
                         f"{ms:.3g} ms for the CPU cost model, whose error no published figure has measured")
        else:
            ms, low, high = ms + cpu_ms, low + cpu_low, high + cpu_high
    if below or uncounted:  # time the estimate does not count: it bounds latency from below only, and what
        low, high = ms, math.inf  # it counts is its lower end (never a lower end below the estimate itself)
    result = judge_latency_estimate(ms, low, high, budget, "lower bound" if math.isinf(high) else "stated error range")
    result.notes[-1] = ("the compiler's estimate, not a measurement: rknn-toolkit2's per-layer cycle counts, summed, "
                        f"at {model.clock_ghz:g} GHz, times {model.scale:.3g}, plus {model.rw_ms_per_mb:.3g} ms per MiB "
                        f"its layer table moves ({found.rw_mb:.3g}) and {model.activation_ms_per_melement:.3g} ms per "
                        f"million sigmoid-like activations ({found.activation_melements:.3g}) ({model.calibration}); "
                        f"each bound is compared with it and with its stated error range (x/÷{model.error_factor:g})")
    if not smallest:
        result.notes.append("the profile's compiler_estimate names no calibration point: the estimate is a lower "
                            "bound only")
    elif below:
        result.notes.append(f"{cycles} cycles is below the calibration's smallest model ({smallest} cycles): the "
                            "runtime's fixed cost per inference and per layer, which the compiler does not count, "
                            "weighs more here, so the estimate is a lower bound only (a bound above it is inconclusive)")
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
        if uncounted:
            result.notes.append(f"{len(cpu)} layers run on the CPU ({names}), which the compiler counts as 0 cycles, "
                                f"and {uncounted}: the estimate leaves their time out, so it is a lower bound only")
        else:
            result.notes.append(f"{len(cpu)} layers run on the CPU ({names}), which the compiler counts as 0 cycles: "
                                f"their time, {cpu_time[0]:.3g} ms (range {cpu_time[1]:.3g}..{cpu_time[2]:.3g}), is "
                                f"estimated by {device.name}'s CPU cost model from the layer table's shapes and added")
            result.facts["estimate.cpu_ms"] = f"{cpu_time[0]:.4g}"
    if second is not None:
        _beside(result, second, (low, high))
    return result


def _beside(result: CheckResult, second: LatencyEstimate | str, deciding: tuple[float, float]) -> None:
    """The cost model's estimate of the same network as a note; where its calibrated range and the compiler's
    do not overlap, a bound the two would judge oppositely (one passes it, the other fails it) is inconclusive."""
    if isinstance(second, str):
        result.notes.append(f"no cost-model estimate to set beside the compiler's: {second}")
        return
    low, high = deciding
    result.facts["estimate.cost_model_ms"] = f"{second.ms:.4g}"
    result.facts["estimate.cost_model_range_ms"] = f"{second.low_ms:.4g}..{second.high_ms:.4g}"
    how = "calibrated" if second.calibrated else "UNCALIBRATED, so it judges nothing"
    result.notes.append(f"the cost model's estimate of the same network ({second.precision}, {how}): {second.ms:.3g} ms, "
                        f"range {second.low_ms:.3g}..{second.high_ms:.3g}; for a .rknn the compiler's estimate decides")
    if not second.calibrated or (second.low_ms <= high and low <= second.high_ms):
        return
    result.notes.append(f"the two estimates disagree: the compiler's range {low:.3g}..{high:.3g} ms and the cost model's "
                        f"{second.low_ms:.3g}..{second.high_ms:.3g} ms do not overlap")
    for index, measurement in enumerate(result.measurements):
        if not measurement.judged or measurement.verdict not in ("pass", "fail"):
            continue
        limit = measurement.budget
        assert limit is not None
        other = "pass" if second.high_ms <= limit else ("fail" if second.low_ms > limit else "inconclusive")
        if other != measurement.verdict:
            result.measurements[index] = replace(measurement, cannot_judge=(
                f"the compiler's estimate says {measurement.verdict}, the cost model's (whose range does not overlap "
                f"it) says {other}: neither range can be trusted here"))


def judge_rknn_memory(report: BuildReport, budget: MemoryBudget) -> CheckResult:
    """The compiler's memory totals (feature maps plus weights) against `peak`."""
    internal, weight = report.log.internal_memory_bytes, report.log.weight_memory_bytes
    if internal is None or weight is None:
        raise CannotJudge(f"{report.who}'s log gave no memory totals that edgecheck could read")
    if budget.process is not None:
        raise CannotJudge("memory_mb.process is a process's peak, which only a board can measure; the compiler "
                          "estimates the model's own memory (judge it with peak)")
    result = CheckResult("memory")
    total = (internal + weight) / MIB  # a lower bound: the runtime, its context and I/O buffers come on top
    result.measurements.append(Measurement("memory.estimate.peak", total, "MiB", budget.peak, "max",
                                           interval=(total, math.inf), interval_kind="lower bound"))
    result.measurements.append(Measurement("memory.estimate.internal", internal / MIB, "MiB"))
    result.measurements.append(Measurement("memory.estimate.weights", weight / MIB, "MiB"))
    result.notes.append("the compiler's estimate, not a measurement: rknn-toolkit2's totals of the model's internal "
                        "(feature map) and weight memory on the NPU; the runtime's own memory on the board comes on "
                        "top, so it is a lower bound: it can fail a budget, never pass one (a bound above it is "
                        "inconclusive)")
    result.facts["measured_on"] = f"estimate, not a measurement: {report.who}'s memory totals"
    return result
