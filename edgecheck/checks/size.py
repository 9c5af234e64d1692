"""Artifact size against `size_mb` (MiB, external data included) and `size_ratio` (times smaller
than the original model), with the parameter count beside them."""

from __future__ import annotations

import math

from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.model import ModelInfo
from edgecheck.spec import Budgets

MIB = 2**20


def judge_size(artifact: ModelInfo, original: ModelInfo, budgets: Budgets) -> CheckResult:
    result = CheckResult("size")
    result.measurements.append(Measurement("size_mb", artifact.size_bytes / MIB, "MiB", budgets.size_mb, "max"))
    ratio = original.size_bytes / artifact.size_bytes if artifact.size_bytes else math.inf
    result.measurements.append(Measurement("size_ratio", ratio, "x", budgets.size_ratio, "min"))
    result.measurements.append(Measurement("size_bytes", float(artifact.size_bytes), "B"))
    result.measurements.append(Measurement("parameters", float(artifact.parameters)))
    result.measurements.append(Measurement("parameters.original", float(original.parameters)))
    return result
