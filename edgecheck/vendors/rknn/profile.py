"""The rknn backend's own options in a device profile (under backends: {rknn: {...}}): the chip the
toolkit builds for (`platform`, common to every backend) and the compiler's cycle estimate, calibrated."""

from __future__ import annotations

from pydantic import Field

from edgecheck.devices import BackendOptions
from edgecheck.strict import StrictModel


class CompilerPoint(StrictModel):
    """A published latency beside the cycle total the vendor's compiler gives the same architecture."""

    model: str
    input: list[int]
    published_ms: float = Field(gt=0)
    cycles: int = Field(gt=0, description="The compiler's total cycles for the architecture (its build log).")
    source: str


class CompilerEstimate(StrictModel):
    """Latency from a vendor compiler's own cycle estimate (rknn-toolkit2's per-layer table): total
    cycles at the NPU clock, times a factor fitted on published figures."""

    clock_ghz: float = Field(gt=0, description="The NPU clock the cycles are counted at.")
    scale: float = Field(gt=0, description="Published time over cycles/clock, fitted on the points.")
    error_factor: float = Field(ge=1, description="The stated error: the true figure within [est/f, est*f].")
    calibration: str
    points: list[CompilerPoint] = Field(min_length=1, description="What the scale was fitted on; a model below "
                                        "the smallest is judged on a lower bound only.")


class RknnOptions(BackendOptions):
    """platform: rknn-toolkit2's target_platform; compiler_estimate: latency from its cycle counts."""

    compiler_estimate: CompilerEstimate | None = Field(None, description="Latency from the vendor compiler's "
                                                       "cycle estimate, for artifacts whose build reports one.")
