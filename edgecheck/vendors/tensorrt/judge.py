"""The static judge of a .trtjob: its ONNX graph against the tensorrt-onnx-parser table and the cost model, as any
ONNX graph, except that the latency estimate computes in the precision of the job's build settings (a float graph
built with --fp16 is an FP16 engine), never the graph's FP32."""

from __future__ import annotations

from pathlib import Path

from edgecheck.static_checks import OnnxJudge
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
