"""Board power and energy per inference against the `power` budget: average power while timing (`power_w`),
energy of one inference (`energy_mj`), the power mode the board must be in (`power_mode`, nvpmodel's name)
and whether its clocks must be locked (`clocks_locked`, jetson_clocks).

The figures come from the worker on a board (edgecheck.worker.power): the board's own rails (a Jetson's
INA3221, its module-input rail) or the boards file's `power_command`, sampled while the timing run that
the latency check uses runs (Executor.measured shares it), with idle power sampled first and shown apart.
Nothing else measures power: a host target, a board without a sensor or meter, or a figure that was not
read cannot be judged, and says why; a power mode or clock state that cannot be read leaves its bound
inconclusive, never passed.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.errors import CannotJudge
from edgecheck.spec.words import Says
from edgecheck.strict import StrictModel

Watts = Annotated[float, Says("a number of watts", "10")]
Millijoules = Annotated[float, Says("a number of millijoules per inference", "50")]
POWER_TIMING_S = 5.0  # the timed window of an entry with no latency budget to share: enough readings at 20 Hz
RESOLUTION = 1e-9  # relative: a difference of two float sums smaller than this is rounding, not energy
BOUNDS = ("power_w", "energy_mj", "power_mode", "clocks_locked")


class PowerBudget(StrictModel):
    """What a board may draw while it runs the model, and the state it must be measured in."""

    power_w: Watts | None = Field(None, gt=0, description="Max average board power while timing, W (the module's "
                                  "input rail, or the boards file's power_command).")
    energy_mj: Millijoules | None = Field(None, gt=0, description="Max energy of one inference, mJ: average power "
                                          "times the timed window, over the inferences timed (idle power included; "
                                          "the energy above idle is shown beside).")
    power_mode: Annotated[str, Field(min_length=1, max_length=64)] | Annotated[int, Field(ge=0, le=99)] | None = Field(
        None, description="The nvpmodel power mode the board must be in, by name (MAXN, 5W, 15W, ...) or by its "
        "numeric id (nvpmodel -m 0)", examples=["MAXN", 0])
    clocks_locked: bool | None = Field(None, description="true: the board's clocks must be locked (jetson_clocks); "
                                       "false: they must not be.")

    says: ClassVar[Says] = Says("a mapping of power bounds", "{power_w: 10, energy_mj: 50, power_mode: MAXN}")
    partial: ClassVar[bool] = False  # an override: any subset (see LatencyBudget.partial)

    @field_validator("power_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
            raise ValueError("write the nvpmodel power mode's name (MAXN, 5W, ...) or its numeric id (0, 1, ...), "
                             f"not {value!r}")
        return value

    @model_validator(mode="after")
    def _some_bound(self) -> PowerBudget:
        if not self.partial and all(getattr(self, name) is None for name in BOUNDS):
            raise ValueError("power names no bound: give power_w (W), energy_mj (mJ), power_mode (an nvpmodel "
                             "mode name) or clocks_locked (true/false)")
        return self


class PowerOverride(PowerBudget):
    """A compress entry's changes to the target's power budget (any subset; null drops a bound)."""

    partial = True


def combine_rounds(rounds: list[dict[str, Any] | None]) -> dict[str, Any]:
    """One figure from every fresh worker's power readings: energy and time summed, so a longer round weighs
    more. CannotJudge with the first reason where a round read no power."""
    for found in rounds:
        if not found:
            raise CannotJudge("the board's worker sampled no power during this timing")
        if found.get("source") is None:
            raise CannotJudge(f"cannot judge power: {found.get('error') or 'no power source on this board'}")
        if found.get("error") or found.get("active_w") is None:
            raise CannotJudge(f"cannot judge power: {found.get('source')}: {found.get('error') or 'no reading'}")
        active = float(found["active_w"])
        if not math.isfinite(active) or active <= 0:  # a board running a model never draws 0 W: a dead sensor
            raise CannotJudge(f"cannot judge power: {found.get('source')} read {active:g} W while timing, not a "
                              "board's power (a rail or meter that reads nothing)")
    first = rounds[0] or {}
    window = sum(float(r["window_s"]) for r in rounds if r)
    joules = sum(float(r["active_w"]) * float(r["window_s"]) for r in rounds if r)
    inferences = sum(int(r["inferences"]) for r in rounds if r)
    if window <= 0 or inferences <= 0 or not math.isfinite(joules):
        raise CannotJudge(f"cannot judge power: {first.get('source')}: no timed window to divide by "
                          f"({window:g} s, {inferences} inferences)")
    idle = [float(r["idle_w"]) for r in rounds if r and r.get("idle_w") is not None]
    combined = {"source": first.get("source"), "rails": list(first.get("rails") or []), "active_w": joules / window,
                "energy_mj": joules / inferences * 1000.0, "window_s": window, "inferences": inferences,
                "samples": sum(int(r.get("samples", 0)) for r in rounds if r),
                "idle_w": sum(idle) / len(idle) if len(idle) == len(rounds) else None,
                "idle_error": next((r["idle_error"] for r in rounds if r and r.get("idle_error")), "")}
    if combined["idle_w"] is not None:
        dynamic = (joules - combined["idle_w"] * window) / inferences * 1000.0
        # below the figures' resolution (float noise of equal idle and active readings, 1e-9 of the energy) is 0
        combined["dynamic_energy_mj"] = 0.0 if abs(dynamic) <= RESOLUTION * combined["energy_mj"] else dynamic
    return combined


def judge_power(power: dict[str, Any], budget: PowerBudget, mode: str | None, clocks: bool | None) -> CheckResult:
    """Power and energy against their bounds, idle apart; the power mode and clock state against theirs."""
    result = CheckResult("power")
    result.measurements.append(Measurement("power.average", power["active_w"], "W", budget.power_w,
                                           "max" if budget.power_w is not None else None))
    result.measurements.append(Measurement("power.energy_per_inference", power["energy_mj"], "mJ", budget.energy_mj,
                                           "max" if budget.energy_mj is not None else None))
    if power.get("idle_w") is not None:
        result.measurements.append(Measurement("power.idle", power["idle_w"], "W"))
        result.measurements.append(Measurement("power.energy_above_idle", power["dynamic_energy_mj"], "mJ"))
    elif power.get("idle_error"):
        result.notes.append(f"idle power not measured: {power['idle_error']}")
    result.measurements.append(Measurement("power.window", power["window_s"], "s"))
    result.measurements.append(Measurement("power.readings", float(power["samples"])))
    result.measurements.append(Measurement("power.inferences", float(power["inferences"])))
    if budget.power_mode is not None:
        if mode is None:
            result.doubts.append(f"the budget requires power mode {budget.power_mode} and the board's power mode "
                                 "could not be read (nvpmodel -q)")
        elif not mode_matches(mode, budget.power_mode):
            wanted = budget.power_mode
            how = f"sudo nvpmodel -m {wanted}" if isinstance(wanted, int) else f"sudo nvpmodel -m <id of {wanted}>"
            result.problems.append(f"the board is in power mode {mode}, the budget requires "
                                   f"{'nvpmodel mode ' if isinstance(wanted, int) else ''}{wanted} ({how})")
        else:  # a judged figure: 1 = in the mode required
            result.measurements.append(Measurement("power.mode_as_required", 1.0, "", 1.0, "min",
                                                   budget_text=f"1 (power mode {budget.power_mode})"))
    if budget.clocks_locked is not None:
        if clocks is None:
            result.doubts.append("the budget says whether clocks must be locked and the board's clock state could "
                                 "not be read")
        elif clocks != budget.clocks_locked:
            result.problems.append("the board's clocks are " + ("locked" if clocks else "not locked")
                                   + ", the budget requires them " + ("locked (sudo jetson_clocks)"
                                                                      if budget.clocks_locked else "not locked"))
        else:
            result.measurements.append(Measurement("power.clocks_as_required", 1.0, "", 1.0, "min", budget_text=(
                "1 (clocks " + ("locked" if budget.clocks_locked else "not locked") + ")")))
    return result


def mode_matches(mode: str, wanted: str | int) -> bool:
    """Whether the board's mode ("MAXN (nvpmodel mode 0)", "MAXN" or "nvpmodel mode 0") is the one wanted: by id for
    an int (compared with the mode's id, never its name), by name (case aside) for a string."""
    if isinstance(wanted, int):
        found = re.search(r"nvpmodel mode (\d+)", mode)
        return found is not None and int(found.group(1)) == wanted
    name = mode.split(" (")[0].strip()
    return name.lower() == wanted.strip().lower() or mode.strip().lower() == wanted.strip().lower()


_LOCKED = ("true", "locked", "locked (jetson_clocks)", "yes", "1")
_UNLOCKED = ("false", "not locked", "unlocked", "no", "0")


def clocks_state(value: Any) -> bool | None:
    """The board's clock state as the board facts spell it ("locked" / "not locked", power.jetson_facts); None
    where unknown, so a bound on it is inconclusive, never passed or failed on a word not understood."""
    text = str(value).strip().lower() if value is not None else ""
    return True if text in _LOCKED else False if text in _UNLOCKED else None


class PowerCheck(Check):
    """Average power, energy per inference, power mode and clocks of a board while it times the model."""

    name = "power"
    order = 55
    device_dependent = True
    budgets: ClassVar = {"power": BudgetField(PowerBudget | None, Field(
        None, description="Board power while timing (measured on a board of the boards file): "
        "{power_w: 10, energy_mj: 50, power_mode: MAXN, clocks_locked: true}.",
        examples=[{"power_w": 10}, {"energy_mj": 50, "power_mode": "MAXN"}]),
        override=PowerOverride | None, bounds=BOUNDS)}

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        target = planned.target
        if target.is_host:
            raise CannotJudge("cannot judge power on the host: edgecheck samples power only on a board of the boards "
                              "file (a Jetson's INA3221 rails, or the board's power_command)")
        where = context.where_measured(planned)  # a device with no board: CannotJudge, said at once
        if not context.measures_on_board(planned):
            raise CannotJudge(f"cannot judge {target.name} power: {planned.backend} is measured on {where}, and "
                              "power is sampled only on a board")
        backend = context.backend(planned.backend, target)
        made = context.artifact(planned.spec, planned.recipe)
        from edgecheck.measure.runs import TimingPlan

        latency = getattr(planned.budgets, "latency_ms", None)
        # the latency check's run where there is one (the same plan: one timing, shared), else one long enough
        plan = (TimingPlan.for_latency(latency) if latency is not None else
                TimingPlan(warmup_runs=10, warmup_s=1.0, samples=None, max_seconds=POWER_TIMING_S, exclusive=True))
        measured = context.measured(planned, backend, made.artifact.path, plan)
        budget: PowerBudget = planned.budgets.power
        if budget.power_w is None and budget.energy_mj is None and not measured.extra.get("power"):
            power = None  # only the mode and clocks are budgeted: judged without a power figure
        else:
            try:
                power = combine_rounds(list(measured.extra.get("power") or [None]))
            except CannotJudge as exc:  # a meter's words name the command: say whose and where it is set too
                board = measured.extra.get("board")
                if board and "power_command" in str(exc):
                    raise CannotJudge(f"{exc} (the power_command: of board {board} in the boards file; "
                                      "`edgecheck boards` runs it once)") from None
                raise
        state = measured.extra.get("jetson") or {}
        mode, clocks = state.get("power_mode"), clocks_state(state.get("clocks"))
        mode = mode.strip() or None if mode else None  # "MAXN (nvpmodel mode 0)": its name and id, both judged
        if power is None:
            result = CheckResult("power")
            judged = judge_power({"active_w": math.nan, "energy_mj": math.nan, "window_s": 0, "samples": 0,
                                  "inferences": 0}, budget, mode, clocks)
            result.problems, result.doubts = judged.problems, judged.doubts
            result.measurements = [m for m in judged.measurements if m.judged]  # the mode and clocks only
        else:
            result = judge_power(power, budget, mode, clocks)
            result.facts["power.source"] = str(power["source"])
            result.facts["power.method"] = (
                f"{power['source']}, read every ~50 ms: idle for a while after the model loaded, then over the timed "
                "window; energy per inference = average power x window / inferences timed")
        result.facts["power.mode"] = str(mode or "unknown")
        result.facts["power.clocks"] = {True: "locked", False: "not locked", None: "unknown"}[clocks]
        result.facts["measured_on"] = measured.extra.get("measured_on") or where
        return result
