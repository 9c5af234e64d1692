"""The static judge of a .tflite artifact: the converter's real operators against a TFLite table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecheck.analysis.optable import OpTable
from edgecheck.analysis.static import StaticAnalysis
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.result import CheckResult
from edgecheck.plan import PlannedCheck
from edgecheck.static_checks import Shapes, StaticJudge
from edgecheck.vendors.tflite.format import TfliteFormat
from edgecheck.vendors.tflite.ops import classify_tflite, tflite_graph


class TfliteJudge(StaticJudge):
    """The converter's real operators, against a TFLite table; no estimate (the cost model reads ONNX)."""

    def ops(self, analysis: StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        budget = planned.budgets.ops
        assert budget is not None
        table = analysis.table_for(planned.target, planned.backend, budget.table, TfliteFormat.name)
        result = judge_ops(classify_tflite(tflite_graph(path), table), budget)
        result.facts["measured_on"] = "nowhere: static analysis of the .tflite file's operators (no run)"
        return result
