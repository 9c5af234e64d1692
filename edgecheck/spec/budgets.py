"""The accuracy and parity budgets of a spec (the latency, memory and regression ones are in
performance.py, the operators' in ops.py): what the built-in check kinds declare as their budget fields."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from edgecheck.spec.words import Cosine, Decibels, Fraction, Ratio, Says, Tolerance
from edgecheck.strict import StrictModel

_DROP_SAYS = Says("points of the metric (a number) or percent of the original's metric (text ending in %)",
                  "1.0 or '1%'")


class AccuracyDrop(StrictModel):
    """How far the metric may fall below the original: absolute points, or percent of the original."""

    value: float = Field(ge=0)
    relative: bool = False

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g} pts"


_DROP = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|pts?|points?)?\s*$")


def _parse_drop(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("accuracy_drop must be a number (points) or a string like '1%' (relative)")
    if isinstance(value, (int, float)):
        return {"value": value, "relative": False}
    if isinstance(value, str):
        match = _DROP.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a drop: use a number of points (1.0) or a percentage ('1%')")
        return {"value": float(match.group(1)), "relative": match.group(2) == "%"}
    return value


AccuracyDropField = Annotated[
    AccuracyDrop,
    BeforeValidator(_parse_drop),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "Absolute points of the metric."},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(%|pts?|points?)?\s*$",
                 "description": "'1%' is relative to the original's metric; '1 pts' is absolute."},
            ]
        }
    ),
    _DROP_SAYS,
]


class TopKAgreement(StrictModel):
    """How much of the reference's top k the artifact's top k holds, on average."""

    k: int = Field(ge=1, description="How many of the highest scores are compared.", examples=[5])
    min: Fraction = Field(ge=0, le=1, description="Mean overlap of the top-k sets, 0..1.", examples=[0.9])

    says: ClassVar[Says] = Says("a mapping {k, min}", "{k: 5, min: 0.9}")


class ParityBudget(StrictModel):
    """Numerical agreement with the reference, per output. Cosine alone is blind to scale errors."""

    atol: Tolerance | None = Field(None, ge=0, description="Max absolute error |out - ref|.", examples=[0.001])
    rtol: Ratio | None = Field(None, ge=0, description="Max relative error |out - ref| / |ref|.", examples=[0.01])
    rel_l2: Ratio | None = Field(None, ge=0, description="Max ||out - ref|| / ||ref||.", examples=[0.01])
    cosine: Cosine | None = Field(None, ge=-1, le=1, description="Min cosine similarity.", examples=[0.999])
    snr_db: Decibels | None = Field(None, description="Min signal-to-noise ratio in dB.", examples=[30])
    top1_agreement: Fraction | None = Field(None, ge=0, le=1, description="Min fraction of equal argmax, 0..1.",
                                            examples=[0.98])
    topk_agreement: TopKAgreement | None = Field(None, description="Min mean overlap of the top-k sets.",
                                                 examples=[{"k": 5, "min": 0.9}])

    says: ClassVar[Says] = Says("a mapping of agreement bounds", "{cosine: 0.999, rel_l2: 0.01}")

    partial: ClassVar[bool] = False  # an override: any subset, `null`s to drop bounds (see LatencyBudget.partial)

    @model_validator(mode="after")
    def _not_empty(self) -> ParityBudget:
        if not self.partial and all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("parity budget names no bound: give atol, rtol, rel_l2, cosine, snr_db or an agreement")
        return self


class ParityOverride(ParityBudget):
    """Parity bounds replacing some of the target's: may name only `null`s, to drop bounds."""

    partial = True
