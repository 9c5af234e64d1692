"""The static judge of a .tflite artifact: the converter's real operators against a TFLite table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from edgecheck.analysis.ops import OpsReport
from edgecheck.analysis.optable import OpTable
from edgecheck.analysis.static import StaticAnalysis
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.result import CheckResult
from edgecheck.devices import DeviceProfile
from edgecheck.plan import PlannedCheck
from edgecheck.analysis.views import fit_lines
from edgecheck.static_checks import Shapes, StaticJudge
from edgecheck.vendors.tflite.format import TfliteFormat
from edgecheck.vendors.tflite.model import read_tflite
from edgecheck.vendors.tflite.ops import TfliteGraph, classify_tflite, tflite_graph
from edgecheck.vendors.tflite.views import tflite_fit_rows, tflite_inspect_lines


class TfliteJudge(StaticJudge):
    """The converter's real operators, against a TFLite table; no estimate (the cost model reads ONNX)."""

    command_views = True

    def ops(self, analysis: StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        budget = planned.budgets.ops
        assert budget is not None
        table = analysis.table_for(planned.target, planned.backend, budget.table, TfliteFormat.name)
        result = judge_ops(classify_tflite(tflite_graph(path), table), budget)
        result.facts["measured_on"] = "nowhere: static analysis of the .tflite file's operators (no run)"
        return result

    def operators(self, path: Path) -> TfliteGraph:
        read_tflite(path)  # bounds and names every fault of the file first
        return tflite_graph(path)

    def classify(self, operators: object, table: OpTable) -> OpsReport:
        assert isinstance(operators, TfliteGraph)
        return classify_tflite(operators, table)

    def inspect_text(self, path: Path, as_json: bool) -> str:
        model = read_tflite(path)
        if not as_json:
            return "\n".join(tflite_inspect_lines(model))

        def tensors(found):
            return [{"name": t.key, "tensor": t.name, "dtype": t.dtype, "shape": list(t.shape), "scale": t.scale,
                     "zero_point": t.zero_point} for t in found]
        return json.dumps({"format": "tflite", "inputs": tensors(model.inputs), "outputs": tensors(model.outputs),
                           "parameters": model.parameters, "parameter_bytes": model.parameter_bytes,
                           "size_bytes": model.size_bytes, "subgraphs": model.subgraphs,
                           "signatures": list(model.signatures), "op_counts": model.op_counts()}, indent=2)

    def fit_lines(self, path: Path, profiles: dict[str, DeviceProfile], tables: dict[str, OpTable],
                  shown: str = "") -> list[str]:
        model = read_tflite(path)
        return [f"{shown or path}: {model.parameters / 1e6:.3g} M parameters, {len(model.ops)} operators (TFLite)",
                *fit_lines(tflite_fit_rows(model, tflite_graph(path), profiles, tables))]
