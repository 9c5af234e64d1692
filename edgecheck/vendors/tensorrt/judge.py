"""The static judge of a .trtjob: its ONNX graph against the tensorrt-onnx-parser table and the cost model, as any
ONNX graph, except that the latency estimate computes in the precision of the job's build settings (a float graph
built with --fp16 is an FP16 engine), never the graph's FP32.

On a target a Jetson board serves, the ops check is judged on the engine the board built (`placed_ops`): each
layer's placement from the board's timing run (timing.layer_records: trtexec's --exportLayerInfo and the build
log's [DlaLayer]/[GpuLayer] lists), the table's verdict on the source graph as the cross-check. Where the board's
TensorRT wrote no layer info (8.0), the table judges, and the result says why."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecheck.analysis.static import StaticAnalysis
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.result import CheckResult
from edgecheck.errors import CannotJudge
from edgecheck.plan import PlannedCheck
from edgecheck.static_checks import OnnxJudge, Shapes
from edgecheck.vendors.tensorrt.format import read_build_settings

_WHY = {"fp32": "tensorrt-fp32 builds with --noTF32",
        "fp16": "tensorrt-fp16 builds with --fp16; TensorRT keeps a layer in FP32 where that is faster, so an FP16 "
                "figure is the optimistic end",
        "int8": "tensorrt-int8 builds the graph's Q/DQ layers in INT8; TensorRT keeps unquantized layers in FP16 or "
                "FP32, so an INT8 figure is the optimistic end"}


class TensorrtJobJudge(OnnxJudge):
    def computes_in(self, path: Path) -> tuple[str, str] | None:
        settings = read_build_settings(path)
        why = _WHY.get(settings.precision, "")
        return settings.precision, f"the precision of {path.name}'s build settings" + (f" ({why})" if why else "")

    def placed_ops(self, analysis: StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
                   reported: Mapping[str, Any], where: str) -> CheckResult:
        """The engine's placement per layer (the authority: it is what runs) against the ops budget: a layer that
        fell back from the DLA asked for to the GPU is a fallback; nothing is unsupported in a built engine (a
        failed build failed before this). Where the table's verdict on the ONNX graph disagrees, the notes say so."""
        from edgecheck.vendors.tensorrt.layers import from_records, placement_report

        board = where.split(" (")[0]  # "jetson-xavier-nx board nx-1 (..., TensorRT 8.5.2, ...)": the board
        if "layers" not in reported:
            why = reported.get("placement_note") or "its timing run reported no layer placement"
            result = self.ops(analysis, planned, path, shapes, lambda: None)
            result.notes.insert(0, f"judged by the {result.facts.get('ops.table', 'operator table').split(':')[0]} "
                                f"table on the ONNX graph, not on the engine: the engine {board} built gave no "
                                f"placement per layer ({why}; TensorRT 8.2 or later writes it)")
            result.facts["ops.board"] = where
            return result
        budget = planned.budgets.ops
        assert budget is not None
        try:
            engine = from_records(reported["layers"], "the board's timing report: layers")
        except ValueError as exc:
            raise CannotJudge(f"cannot judge ops on the engine {board} built: {exc}") from None
        graph = analysis.analysis(path, shapes())
        table = analysis.table_for(planned.target, planned.backend, budget.table)
        source = analysis.classify(graph.graph, table)
        who = f"TensorRT {reported.get('tensorrt') or '(version unknown)'} on {board}"
        report, disagreements = placement_report(engine, table, source.verdicts, who)
        result = judge_ops(report, budget, disagreements)
        total = reported.get("layers_total")
        if isinstance(total, int) and total > len(engine):
            result.doubts.append(f"the board sent the placement of the first {len(engine)} of the engine's {total} "
                                 "layers: the rest are not counted, so no count is a pass")
        if reported.get("engine_note"):
            result.notes.append(str(reported["engine_note"]))
        method = "trtexec --exportLayerInfo / build log"
        result.facts["ops.table"] = (f"engine placement ({method} on {board}): the authority, checked against "
                                     f"{table.name}: {table.citation()}")
        result.facts["ops.source"] = f"engine placement ({method} on {board})"
        result.facts["measured_on"] = where
        result.facts.update(analysis.fit_facts(graph, planned.target))
        return result
