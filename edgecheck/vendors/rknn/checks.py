"""The ops, latency and memory budgets of a `.rknn` artifact, judged on what Rockchip's compiler said
when it built it (the build report beside the artifact): where each layer runs, its cycle estimate and
its memory totals. These are the compiler's figures, labelled so, never measurements.

Ops: the build is the authority for what the NPU takes (a refused build already failed the entry);
every layer the compiler put on the CPU counts as a fallback. The shipped rknn table's verdict on the
source ONNX graph is checked against it, and where they differ the disagreement is noted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from edgecheck.analysis.ops import CompiledLayer, NodeVerdict, OpsReport
from edgecheck.analysis.optable import OpTable
from edgecheck.vendors.rknn.build_log import BuildLog
from edgecheck.vendors.rknn.backend import build_dir, read_report
from edgecheck.vendors.rknn.toolkit import read_job
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.errors import CannotJudge
from edgecheck.spec.ops import OpsBudget
from edgecheck.spec.performance import MemoryBudget

MIB = 2**20


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
