"""Artifact size against `size_mb` (MiB, external data included) and `size_ratio` (times smaller
than the original model), with the parameter count beside them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.spec.words import Factor, Mebibytes
from edgecheck.units import MIB

if TYPE_CHECKING:
    from edgecheck.model import ModelInfo
    from edgecheck.spec import Budgets


def judge_size(artifact: ModelInfo, original: ModelInfo, budgets: Budgets) -> CheckResult:
    result = CheckResult("size")
    result.measurements.append(Measurement("size_mb", artifact.size_bytes / MIB, "MiB", budgets.size_mb, "max"))
    ratio = original.size_bytes / artifact.size_bytes if artifact.size_bytes else math.inf
    result.measurements.append(Measurement("size_ratio", ratio, "x", budgets.size_ratio, "min"))
    result.measurements.append(Measurement("size_bytes", float(artifact.size_bytes), "B"))
    result.measurements.append(Measurement("parameters", float(artifact.parameters)))
    result.measurements.append(Measurement("parameters.original", float(original.parameters)))
    return result


class SizeCheck(Check):
    """The artifact's bytes on disk (side files included) and how many times smaller than the model it is."""

    name = "size"
    order = 30
    device_dependent = True
    budgets = {
        "size_mb": BudgetField(Mebibytes | None, Field(None, gt=0, description="Max artifact size in MiB (2**20 bytes).",
                                                       examples=[0.5, 12])),
        "size_ratio": BudgetField(Factor | None, Field(None, gt=0, description=(
            "Min original size / artifact size: 3 means at least 3x smaller than the model."), examples=[3])),
    }

    suggest_notes = {"size_mb": "size_mb: artifact size*(1+margin), rounded up to 2 significant digits",
                     "size_ratio": "size_ratio: measured ratio*(1-margin), rounded down to 2 significant digits"}
    suggest_lower = frozenset({("size_ratio",)})

    def suggest(self, result: Mapping[str, Any], context: Any) -> dict[str, Any]:
        from edgecheck.checks.suggest import suggest_size

        return suggest_size(result, context)

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        artifact = context.artifact(planned.spec, planned.recipe).artifact
        original = context.model_info(planned.spec.spec.model.path)
        return judge_size(context.model_info(artifact.path), original, planned.budgets)
