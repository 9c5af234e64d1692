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
from edgecheck.static_checks import Shapes, StaticJudge, judged_content
from edgecheck.vendors.rknn.backend import REPORT_FILE, build_dir
from edgecheck.vendors.rknn.checks import BuildReport, judge_rknn_memory, judge_rknn_ops, read_build_report
from edgecheck.vendors.rknn.toolkit import JOB_FILE, read_job
from edgecheck.vendors.rknn.latency import judge_rknn_latency


class RknnJudge(StaticJudge):
    """The compiler's build report: its placement of each layer, its cycles and its memory totals."""

    def content(self, analysis: StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
                authority: Callable[[], OpTable | None], sha256: Callable[[Path], str]) -> dict[str, object] | None:
        """What the graph's verdict reads, plus the build's report and job (bytes) and the source graph the
        build read; None (not cached) where the build folder is unreadable: the judge says why at once."""
        import hashlib

        folder = build_dir(path)
        try:
            build = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in (REPORT_FILE, JOB_FILE)}
            build["source"] = sha256(folder / read_job(folder)["model"])
        except (EdgecheckError, OSError, ValueError, KeyError, TypeError):
            return None
        return {**judged_content(analysis, planned, shapes, authority), "build": build}

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
        cost_model = self._cost_model(analysis, report, planned, shapes)
        result = judge_rknn_latency(report, planned.target, planned.backend, planned.budgets.latency_ms,  # type: ignore[arg-type]
                                    cost_model_estimate=cost_model)
        # no cost-model estimate: its failure may be the machine's (a shape inference's timeout or memory
        # limit), so this verdict without it is not kept; a warm run tries the estimate again
        result.keep = not isinstance(cost_model, str)
        return result

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
