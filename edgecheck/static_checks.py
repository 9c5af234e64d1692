"""The checks that read an artifact without running it: `ops`, and latency or memory judged on an
estimate. Each artifact format has its own authority: an ONNX graph goes against the operator table
and the analytical cost model, a .tflite file's own operators against a TFLite table, and a .rknn
against what Rockchip's compiler said when it built it (placement, cycles, memory).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecheck.analysis import static
from edgecheck.analysis.optable import OpTable
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.performance import judge_latency_estimate
from edgecheck.checks.result import CheckResult
from edgecheck.vendors.rknn.checks import judge_rknn_latency, judge_rknn_memory, judge_rknn_ops, read_build_report
from edgecheck.errors import CannotJudge
from edgecheck.plan import PlannedCheck

Shapes = dict[str, tuple[int, ...]]


class StaticChecks:
    def __init__(self, analysis: static.StaticAnalysis):
        self.static = analysis

    def ops(self, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        """`authority()`: the installed runtime's own table where it is the device's runtime (it decides
        over the shipped table, which is checked against it); asked only for an ONNX artifact."""
        budget = planned.budgets.ops
        assert budget is not None
        if path.suffix == ".rknn":  # the compiler's placement, checked against the table's verdict on the source
            report = read_build_report(path)
            table = self.static.table_for(planned.target, planned.backend, budget.table)
            source = self.static.classify(self.static.analysis(report.source, shapes()).graph, table)
            return judge_rknn_ops(report, table, source.verdicts, budget)
        if path.suffix == ".tflite":  # the converter's real operators, against a TFLite table
            tflite = self.static.classify_tflite(path, planned.target, planned.backend, budget.table)
            result = judge_ops(tflite, budget)
            result.facts["measured_on"] = "nowhere: static analysis of the .tflite file's operators (no run)"
            return result
        analysis = self.static.analysis(path, shapes())
        table = self.static.table_for(planned.target, planned.backend, budget.table)
        report = self.static.classify(analysis.graph, table)
        disagreements: list[str] = []
        runtime = None if budget.table else authority()  # a table the spec names is its choice
        if runtime is not None:
            runtime_report = self.static.classify(analysis.graph, runtime)
            disagreements = static.disagreements(report, runtime_report)
            report = runtime_report
        result = judge_ops(report, budget, disagreements)
        result.notes.extend(report.notes)  # how many nodes fold away, and at which input shapes
        result.facts["ops.folded_nodes"] = str(report.folded)
        result.facts["measured_on"] = "nowhere: static analysis of the artifact against the operator table (no run)"
        result.facts.update(self.static.fit_facts(analysis, planned.target))
        result.warnings.extend(self.static.fit_warnings(analysis, planned.target))
        return result

    def estimate(self, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes]) -> CheckResult:
        """Latency (or memory) of a device target whose spec accepts an estimate."""
        if path.suffix == ".rknn":  # what the compiler said when it built it
            report = read_build_report(path)
            if planned.check == "memory":
                return judge_rknn_memory(report, planned.budgets.memory_mb)  # type: ignore[arg-type]
            return judge_rknn_latency(report, planned.target, planned.backend, planned.budgets.latency_ms)  # type: ignore[arg-type]
        if planned.check == "memory":
            raise CannotJudge(f"no memory estimate for a {path.suffix} artifact: estimates come from a vendor "
                              "compiler's build (.rknn); measure it on the board, or use source: host")
        budget = planned.budgets.latency_ms
        assert budget is not None
        if path.suffix != ".onnx":
            raise CannotJudge(f"no latency estimate for a {path.suffix} artifact: the cost model reads ONNX graphs "
                              "(measure it, or judge the ONNX model's estimate)")
        analysis = self.static.analysis(path, shapes())
        estimate = self.static.estimate(analysis, planned.target, planned.backend)
        result = judge_latency_estimate(estimate.ms, estimate.low_ms, estimate.high_ms, budget)
        result.notes.extend(estimate.notes)
        result.facts.update(estimate.facts())
        result.facts["measured_on"] = estimate.label()
        result.facts.update(self.static.fit_facts(analysis, planned.target))
        result.warnings.extend(self.static.fit_warnings(analysis, planned.target))
        return result
