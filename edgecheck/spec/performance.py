"""The spec's latency, memory and regression budgets: what a model may cost on a device.

Separate from schema.py because these carry how to measure (samples, warm-up, time budget) as well
as the bounds, and say where a figure may come from: a device target's budget is judged on a figure
measured on that device unless the spec accepts this host's as a stand-in (`source: host`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from edgecheck.spec.words import Mebibytes, Milliseconds, Points, Says, Seconds
from edgecheck.strict import StrictModel

PERCENTILES: dict[str, float] = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
LatencySource = Literal["device", "host", "estimate"]
_SOURCE_HELP = ("Where a figure for a device target may come from: 'device' (default) judges only figures measured "
                "on that device, and says so when there is none; 'host' accepts this machine's figure as a stand-in, "
                "labelled as such. The host target is always measured here.")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def _parse_percent(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("give a percentage such as '10%' or a number of percent")
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a percentage: write it like '10%'")
        return float(match.group(1))
    return value


Percent = Annotated[
    float,
    BeforeValidator(_parse_percent),
    Field(ge=0),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\s*\d+(\.\d*)?\s*%\s*$"}],
                    "description": "Percent: '10%' or 10."}),
    Says("a percentage", "'10%'"),
]


class LatencyBudget(StrictModel):
    """Upper bounds on inference time (ms) of one input, and how to time it."""

    p50: Milliseconds | None = Field(None, gt=0, description="Max median latency, ms.")
    p75: Milliseconds | None = Field(None, gt=0, description="Max 75th percentile, ms.")
    p90: Milliseconds | None = Field(None, gt=0, description="Max 90th percentile, ms.")
    p95: Milliseconds | None = Field(None, gt=0, description="Max 95th percentile, ms.", examples=[2.0])
    p99: Milliseconds | None = Field(None, gt=0, description="Max 99th percentile, ms.")
    mean: Milliseconds | None = Field(None, gt=0, description="Max mean latency, ms.")
    samples: int | None = Field(None, ge=1, le=1_000_000, description="Timed runs. Default: enough for the highest "
                                "percentile budgeted (the MLPerf minimums: 64 for p90, 662 for p99).")
    duration_s: Seconds | None = Field(None, gt=0, le=3600, description="Time budget for the timed runs; with samples, "
                                     "whichever is reached first. Default: 30 s as a cap on the default sample count.")
    rounds: int = Field(3, ge=1, le=20, description="Fresh worker processes the samples are split over: a "
                        "process's own luck (memory layout, a neighbour's load) shows as disagreement between "
                        "rounds, which widens each percentile's interval.")
    warmup_runs: int = Field(10, ge=0, le=100_000, description="Untimed runs first (and at least warmup_s seconds).")
    warmup_s: Seconds = Field(0.5, ge=0, le=600, description="Minimum seconds of warm-up.")
    source: LatencySource = Field("device", description=_SOURCE_HELP + " 'estimate' judges a device target on the "
                                  "analytical cost model's estimate (labelled as such, with its stated error) where "
                                  "the device profile has one for the backend and precision.")
    inconclusive: Literal["warn", "fail"] | None = Field(
        None, description="When a budget lies within the measurement's noise (inside the 95 % confidence interval): "
        "'warn' passes with a warning, 'fail' fails. Default: --edge-inconclusive, else warn.")

    says: ClassVar[Says] = Says("a mapping of percentiles in ms", "{p95: 2}")
    # a compress entry's override (the *Override subclasses): any subset of the fields, checked whole once
    # merged with the target's budget; the checks below that need the whole budget then wait for that
    partial: ClassVar[bool] = False

    @model_validator(mode="after")
    def _some_bound(self) -> LatencyBudget:
        if not self.partial and not self.bounds():
            raise ValueError("latency_ms names no bound: give p50, p75, p90, p95, p99 or mean (ms)")
        return self

    @model_validator(mode="after")
    def _samples_cover_rounds(self) -> LatencyBudget:
        if not self.partial or {"samples", "rounds"} <= self.model_fields_set:  # else the target's may set the other
            self._check_samples_and_rounds()
        return self

    def _check_samples_and_rounds(self) -> None:
        if self.samples is not None and self.samples < self.rounds:
            raise ValueError(f"samples ({self.samples}) is fewer than rounds ({self.rounds}): the samples are split "
                             f"over {self.rounds} fresh workers and each times at least one run; give samples >= "
                             f"{self.rounds} or rounds <= {self.samples}")

    def bounds(self) -> dict[str, float]:
        """Statistic name → budget in ms, for the statistics this budget bounds."""
        names = (*PERCENTILES, "mean")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class MemoryBudget(StrictModel):
    """Upper bounds on memory (MiB) while loading and running the model."""

    peak: Mebibytes | None = Field(None, gt=0, examples=[64], description="Max footprint of the model: the worker's peak resident memory "
                               "during load and inference minus that of an idle worker with the runtime loaded.")
    process: Mebibytes | None = Field(None, gt=0, description="Max peak resident memory of the whole worker process, "
                                  "runtime and interpreter included.")
    source: LatencySource = Field("device", description=_SOURCE_HELP + " 'estimate' judges peak on a vendor "
                                  "compiler's memory totals where the artifact's build reports them (.rknn).")

    says: ClassVar[Says] = Says("a mapping of bounds in MiB", "{peak: 64}")
    partial: ClassVar[bool] = False  # an override: any subset (see LatencyBudget.partial)

    @model_validator(mode="after")
    def _some_bound(self) -> MemoryBudget:
        if not self.partial and self.peak is None and self.process is None:
            raise ValueError("memory_mb names no bound: give peak or process (MiB)")
        return self


class LatencyOverride(LatencyBudget):
    """A compress entry's changes to the target's latency budget (any subset; null drops a bound).
    The budget they make together with the target's is checked when the spec loads."""

    partial = True


class MemoryOverride(MemoryBudget):
    """A compress entry's changes to the target's memory budget (any subset; null drops a bound)."""

    partial = True


class RegressionBudget(StrictModel):
    """How much worse than a stored baseline run (--edge-baseline NAME) this run may be."""

    latency: Percent | None = Field(None, description="Max slow-down of each latency statistic budgeted (p50 if none), "
                                    "in percent of the baseline's.")
    memory: Percent | None = Field(None, description="Max growth of the memory footprint, in percent.")
    accuracy: Points | None = Field(None, ge=0, description="Max fall of the metric below the baseline's, in points.")

    says: ClassVar[Says] = Says("a mapping of allowed regressions", "{latency: '10%', accuracy: 0.5}")
    partial: ClassVar[bool] = False  # an override: any subset (see LatencyBudget.partial)

    @model_validator(mode="after")
    def _some_bound(self) -> RegressionBudget:
        if not self.partial and self.latency is None and self.memory is None and self.accuracy is None:
            raise ValueError("regression names no bound: give latency ('10%'), memory ('10%') or accuracy (points)")
        return self


class RegressionOverride(RegressionBudget):
    """A compress entry's changes to the target's regression budget (any subset; null drops a bound)."""

    partial = True
