"""ONNX, the core's own format: every other format is converted from it, so the core reads it itself."""

from __future__ import annotations

from pathlib import Path

from edgecheck.formats.base import ArtifactFormat
from edgecheck.model import ModelInfo, external_data_files, inspect_onnx


class OnnxFormat(ArtifactFormat):
    """An .onnx file and its external data; judged against the operator table and the cost model."""

    name = "onnx"
    suffixes = (".onnx",)
    judge = "edgecheck.static_checks:OnnxJudge"
    estimates = ("latency",)

    def inspect(self, path: Path) -> ModelInfo:
        return inspect_onnx(path)

    def inspect_reads(self, path: Path) -> dict[str, str] | None:
        return {}  # the file alone (one with external data is inspected every time)

    def side_files(self, path: Path) -> list[Path]:
        return external_data_files(path)
