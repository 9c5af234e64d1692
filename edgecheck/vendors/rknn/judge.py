"""The static judge of a .rknn artifact: what Rockchip's compiler said when it built it (placement of
each layer, cycles, memory totals), loaded by the static checks when a .rknn is judged without running."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecheck.analysis.estimate import LatencyEstimate, estimate_latency
from edgecheck.analysis.optable import OpTable
from edgecheck.analysis.static import StaticAnalysis
from edgecheck.checks.result import CheckResult
from edgecheck.errors import EdgecheckError
from edgecheck.plan import PlannedCheck
from edgecheck.static_checks import Shapes, StaticJudge
from edgecheck.vendors.rknn.checks import BuildReport, judge_rknn_memory, judge_rknn_ops, read_build_report
from edgecheck.vendors.rknn.latency import judge_rknn_latency


class RknnJudge(StaticJudge):
    """The compiler's build report: its placement of each layer, its cycles and its memory totals."""

    def ops(self, analysis: StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        """The compiler's placement, checked against the table's verdict on the source."""
        budget = planned.budgets.ops
        assert budget is not None
        report = read_build_report(path)
        table = analysis.table_for(planned.target, planned.backend, budget.table)
        source = analysis.classify(analysis.analysis(report.source, shapes()).graph, table)
        return judge_rknn_ops(report, table, source.verdicts, budget)

    def estimate(self, analysis: StaticAnalysis, planned: PlannedCheck, path: Path,
                 shapes: Callable[[], Shapes]) -> CheckResult:
        report = read_build_report(path)
        if planned.check == "memory":
            return judge_rknn_memory(report, planned.budgets.memory_mb)  # type: ignore[arg-type]
        return judge_rknn_latency(report, planned.target, planned.backend, planned.budgets.latency_ms,  # type: ignore[arg-type]
                                  cost_model_estimate=self._cost_model(analysis, report, planned, shapes))

    @staticmethod
    def _cost_model(analysis: StaticAnalysis, report: BuildReport, planned: PlannedCheck,
                    shapes: Callable[[], Shapes]) -> LatencyEstimate | str:
        """The cost model's estimate of the network the .rknn holds: the source graph the build read, computed
        in the precision the build gave it (INT8 where it quantized); or why there is none."""
        try:
            facts = analysis.analysis(report.source, shapes()).facts
            return estimate_latency(facts, planned.target, planned.backend, "int8" if report.quantized else None)
        except (EdgecheckError, OSError, ValueError) as exc:  # the note is optional: the compiler's estimate stands
            return str(exc)
