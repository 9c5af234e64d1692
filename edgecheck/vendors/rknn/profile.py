"""The rknn backend's own options in a device profile (under backends: {rknn: {...}}): the chip the
toolkit builds for (`platform`, common to every backend) and the compiler's cycle estimate, calibrated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgecheck.devices import BackendOptions
from edgecheck.strict import StrictModel


class CompilerPoint(StrictModel):
    """A published latency beside the cycle total the vendor's compiler gives the same architecture."""

    model: str
    input: list[int]
    published_ms: float = Field(gt=0)
    cycles: int = Field(gt=0, description="The compiler's total cycles for the architecture (its build log).")
    rw_mb: float = Field(0, ge=0, description="MiB its NPU layers read and write, by the build log's layer table.")
    activation_melements: float = Field(0, ge=0, description="Millions of outputs of its NPU layers with a "
                                        "sigmoid-like activation (ConvExSwish, ConvSigmoid, ...).")
    cpu_ms: float = Field(0, ge=0, description="Its CPU layers' time by the device CPU's cost model: taken off the "
                          "published figure before fitting, as a check adds it back.")
    source: str
    role: Literal["fit", "validate"] = Field("fit", description="fit: the coefficients were fitted on it; "
                                             "validate: held out, it checks their error")


class CompilerEstimate(StrictModel):
    """Latency from a vendor compiler's own cycle estimate (rknn-toolkit2's per-layer table): total
    cycles at the NPU clock, times a factor fitted on published figures."""

    clock_ghz: float = Field(gt=0, description="The NPU clock the cycles are counted at.")
    toolkit: str = Field("2.5.0", description="The rknn-toolkit2 version whose cycle counts the fit read: a build by "
                         "another major.minor version is not judged on it.")
    scale: float = Field(gt=0, description="Published time over cycles/clock, fitted on the points.")
    rw_ms_per_mb: float = Field(0, ge=0, description="ms per MiB the layer table says the NPU layers move, fitted.")
    activation_ms_per_melement: float = Field(0, ge=0, description="ms per million sigmoid-like activation "
                                              "outputs (which the cycles leave out), fitted.")
    error_factor: float = Field(ge=1, description="The stated error: the true figure within [est/f, est*f].")
    calibration: str
    points: list[CompilerPoint] = Field(min_length=1, description="Published figures: those fitted on, and those "
                                        "held out to check the error; a model below the smallest fitted one is "
                                        "judged on a lower bound only.")

    @property
    def coefficients(self) -> tuple[float, float, float]:
        return self.scale, self.rw_ms_per_mb, self.activation_ms_per_melement

    @property
    def fitted(self) -> list[CompilerPoint]:
        return [p for p in self.points if p.role == "fit"]


class RknnOptions(BackendOptions):
    """platform: rknn-toolkit2's target_platform; compiler_estimate: latency from its cycle counts."""

    compiler_estimate: CompilerEstimate | None = Field(None, description="Latency from the vendor compiler's "
                                                       "cycle estimate, for artifacts whose build reports one.")
