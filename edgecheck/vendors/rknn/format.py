"""The .rknn format: a compiled Rockchip NPU model, read through the build folder its recipes write beside
it (a .rknn file has no public format), and judged on what the compiler said when it built it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgecheck.errors import ModelError
from edgecheck.formats.base import ArtifactFormat
from edgecheck.model import ModelInfo, file_sha256, inspect_onnx
from edgecheck.vendors.rknn.backend import REPORT_FILE, build_dir, read_report
from edgecheck.vendors.rknn.toolkit import JOB_FILE, read_job


def inspect_rknn(path: Path) -> ModelInfo:
    """A .rknn artifact's facts: its own size and digest; inputs, outputs and parameters of the ONNX
    model it was built from (the copy in its build folder: a .rknn file has no public format)."""
    folder = build_dir(path)
    try:
        source = inspect_onnx(folder / read_job(folder)["model"])
    except (OSError, ValueError, KeyError, TypeError, ModelError) as exc:
        if not path.is_file():
            raise ModelError(path, f"no such file ({exc})") from None
        raise ModelError(path, f"edgecheck reads a .rknn through the build folder its rknn recipes write beside "
                         f"it ({folder.name}), and that is missing or unreadable: {exc}") from None
    report = read_report(path)
    build = report.get("build") if isinstance(report, dict) else None
    layers = build.get("layers", []) if isinstance(build, dict) else []
    op_counts: dict[str, int] = {}
    for layer in layers if isinstance(layers, list) else []:
        kind = str(layer.get("op_type")) if isinstance(layer, dict) else "?"
        op_counts[kind] = op_counts.get(kind, 0) + 1
    return dataclasses.replace(source, path=path, format="rknn", size_bytes=path.stat().st_size,
                               op_counts=dict(sorted(op_counts.items())), sha256=file_sha256([path]))


class RknnFormat(ArtifactFormat):
    """A .rknn file; its reference outputs are the ONNX model's it was built from (it is never a spec's model)."""

    name = "rknn"
    suffixes = (".rknn",)
    judge = "edgecheck.vendors.rknn.judge:RknnJudge"
    estimates = ("latency", "memory")
    self_contained = False  # read through the build folder its recipes write beside it

    def inspect(self, path: Path) -> ModelInfo:
        return inspect_rknn(path)

    def inspect_reads(self, path: Path) -> dict[str, str] | None:
        """The build's job and report, and the ONNX model it was built from (the file alone: its shapes and
        parameters are what a .rknn's facts take from it); None where the build folder is unreadable."""
        folder = build_dir(path)
        try:
            source = folder / read_job(folder)["model"]
            return {name: file_sha256([file]) for name, file in
                    (("job", folder / JOB_FILE), ("report", folder / REPORT_FILE), ("source", source))}
        except (OSError, ValueError, KeyError, TypeError):
            return None
