"""Artifact size against `size_mb` (MiB, external data included)."""

from __future__ import annotations

from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.model import ModelInfo
from edgecheck.spec import Budgets

MIB = 2**20


def judge_size(artifact: ModelInfo, original: ModelInfo, budgets: Budgets) -> CheckResult:
    result = CheckResult("size")
    result.measurements.append(Measurement("size_mb", artifact.size_bytes / MIB, "MiB", budgets.size_mb, "max"))
    result.measurements.append(Measurement("size_bytes", float(artifact.size_bytes), "B"))
    if artifact.size_bytes:
        result.measurements.append(Measurement("size_ratio", original.size_bytes / artifact.size_bytes, "x"))
    result.measurements.append(Measurement("parameters", float(artifact.parameters)))
    return result
