"""An analytical latency estimate for a device no one has attached: a roofline per node.

Each kernel takes the longer of its arithmetic at the device's effective throughput and its bytes
at the effective bandwidth, plus a fixed launch overhead; element-wise ops that a compiler folds
into the preceding convolution cost only their extra inputs. Efficiencies are fitted to published
figures (`calibrate`), and every result carries the stated error and where its calibration came
from. It is an estimate, and everything that shows it says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgecheck.analysis.costs import ModelFacts, NodeCost, unknown_advice, unknown_cause
from edgecheck.devices import CostModel, DeviceProfile
from edgecheck.errors import CannotJudge

BYTES = {"int8": 1, "uint8": 1, "int4": 0.5, "int16": 2, "fp16": 2, "bf16": 2, "fp32": 4}


@dataclass(frozen=True)
class LatencyEstimate:
    ms: float
    low_ms: float
    high_ms: float
    device: str
    backend: str
    precision: str  # the precision the cost model computes in
    compute_ms: float  # time of nodes bound by arithmetic
    memory_ms: float  # time of nodes bound by bytes moved
    overhead_ms: float
    kernels: int  # nodes that launch a kernel (not folded, not free)
    calibration: str
    calibrated: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def label(self) -> str:
        how = "calibrated" if self.calibrated else "UNCALIBRATED"
        return (f"estimate, not a measurement: analytical cost model for {self.device} {self.backend} "
                f"{self.precision} ({how}: {self.calibration})")

    def cannot_judge(self) -> str:
        """Why this estimate may judge no budget ("" where it may): an uncalibrated model's error was never
        measured on a published figure, so its range (a guess) can neither pass nor fail a bound."""
        if self.calibrated:
            return ""
        why = self.calibration.removeprefix("uncalibrated: ")
        return (f"the {self.device} {self.backend} {self.precision} cost model has no published figures to fit and "
                f"validate it on, so it is uncalibrated ({why}): its {self.ms:.3g} ms is an order of magnitude only")

    def facts(self) -> dict[str, str]:
        return {
            "estimate.ms": f"{self.ms:.4g}",
            "estimate.range_ms": f"{self.low_ms:.4g}..{self.high_ms:.4g}",
            "estimate.split_ms": (f"compute {self.compute_ms:.3g}, memory {self.memory_ms:.3g}, "
                                  f"overhead {self.overhead_ms:.3g} ({self.kernels} kernels)"),
            "estimate.precision": self.precision,
            "estimate.calibration": self.calibration,
            "estimate.label": self.label(),
        }


def aligned_flops(cost: NodeCost, align: int) -> int:
    """A node's arithmetic with a dense convolution's channels rounded up to the MAC array's width."""
    if align <= 1 or cost.conv_dims is None:
        return cost.flops
    pixels, cout, cin, kernel = cost.conv_dims
    return 2 * pixels * -(-cout // align) * align * -(-cin // align) * align * kernel


def node_seconds(cost: NodeCost, model: CostModel, element_bytes: float) -> tuple[float, str]:
    """One node's time and what bounds it ('compute', 'memory', or 'none' when it costs nothing)."""
    if cost.kind == "free":
        return 0.0, "none"
    weights = cost.weight_elements * element_bytes
    lookup = cost.nonlinear_elements * model.activation_ns * 1e-9
    if cost.kind == "epilogue":  # folded into its producer: reads only its own extra inputs
        return weights / (model.bandwidth_gbs * 1e9 * model.bandwidth_efficiency) + lookup, "memory"
    compute = aligned_flops(cost, model.channel_align) / (model.peak_tops * 1e12 * model.compute_efficiency)
    memory = (weights + cost.activation_elements * element_bytes) / (model.bandwidth_gbs * 1e9 * model.bandwidth_efficiency)
    return max(compute, memory) + model.node_overhead_us * 1e-6 + lookup, "compute" if compute >= memory else "memory"


def cost_model_for(profile: DeviceProfile, backend: str, precision: str) -> tuple[CostModel, str, list[str]]:
    """The cost model for an artifact of `precision` on this device and backend, the precision it
    computes in, and notes; `CannotJudge` when the profile has none."""
    support = profile.backends.get(backend)
    models = support.estimate if support is not None else {}
    if precision in models:
        chosen = models[precision]  # type: ignore[index]
        runs = chosen.runs_as or precision
        notes = [f"{backend} computes a {precision} model in {runs} on {profile.name}"] if runs != precision else []
        return chosen, runs, notes
    have = ", ".join(models) or "none"
    raise CannotJudge(f"no latency cost model for {backend} {precision} on {profile.name} (cost models for: {have}); "
                      f"add one to the device profile's backends.{backend}.estimate, or measure on the device")


def estimate_with(facts: ModelFacts, model: CostModel, precision: str) -> tuple[float, float, float, float, int]:
    """(total, compute-bound, memory-bound, overhead) seconds and the kernel count."""
    element = BYTES.get(precision, 4)
    total = compute = memory = overhead = 0.0
    kernels = 0
    for cost in facts.nodes:
        seconds, bound = node_seconds(cost, model, element)
        if cost.kind not in ("free", "epilogue"):
            kernels += 1
            overhead += model.node_overhead_us * 1e-6
            seconds_work = seconds - model.node_overhead_us * 1e-6
        else:
            seconds_work = seconds
        total += seconds
        if bound == "compute":
            compute += seconds_work
        elif bound == "memory":
            memory += seconds_work
    return total, compute, memory, overhead, kernels


def estimate_latency(facts: ModelFacts, profile: DeviceProfile, backend: str,
                     precision: str | None = None) -> LatencyEstimate:
    """The estimated latency of one inference of this model on the device with the backend; `precision`:
    computed in that precision rather than the graph's own (a float graph that a compiler quantizes)."""
    unknown = [n for n in facts.unknown_nodes if n.kind == "compute"]
    if unknown:  # counted as 0, a conv or matmul of unknown size could hide most of the work
        causes = "; ".join(f"{n.node.label} ({n.node.key}): {unknown_cause(n, facts.graph)}" for n in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise CannotJudge(f"cannot estimate latency: {len(unknown)} compute nodes have no known cost ({causes}{more}); "
                          + unknown_advice(facts.graph))
    model, precision, notes = cost_model_for(profile, backend, precision or facts.precision)
    total, compute, memory, overhead, kernels = estimate_with(facts, model, precision)
    ms = total * 1e3
    notes.extend(facts.notes)
    low, high = ms / model.error_factor, ms * model.error_factor
    smallest = min((p.published_ms for p in model.fitted), default=None)
    if smallest is not None and ms < smallest:
        # the small-model guard the compiler's estimate has: below the smallest model the fit saw, the
        # per-inference costs it never saw weigh more: a lower bound, from the estimate up
        low, high = ms, math.inf
        notes.append(f"{ms:.3g} ms is below the smallest model the cost model was fitted on ({smallest:g} ms "
                     "published): the runtime's fixed costs per inference, which the fit did not see, weigh more "
                     "here, so the estimate is a lower bound only (a bound above it is inconclusive)")
    if facts.uncounted:
        low, high = ms, math.inf
        notes.append("work the cost model does not count (above): the estimate is a lower bound only")
    return LatencyEstimate(ms, low, high, profile.name, backend, precision,
                           compute * 1e3, memory * 1e3, overhead * 1e3, kernels, model.calibration,
                           model.calibrated, tuple(notes))
