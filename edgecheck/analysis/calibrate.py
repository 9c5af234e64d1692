"""Fitting a cost model's efficiencies to published latencies, and stating its error honestly.

The fit is a grid search (a few hundred thousand candidates, vectorised; no SciPy needed) that minimises
the largest relative error over the points it is given: compute efficiency, per-kernel overhead, bandwidth
efficiency and the cost of a sigmoid-like activation; the MAC array's channel width (`channel_align`) is
the hardware's and stays as given. A fit says nothing about models it has not seen, so the error we state
comes from models held out of it: leave-one-out over the fitted points gives the range (`error_factor`),
and published points the fit never saw (`role: validate`) check that range (benchmarks/bench_estimate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgecheck.analysis.costs import ModelFacts
from edgecheck.analysis.estimate import BYTES, aligned_flops
from edgecheck.devices import CostModel

COMPUTE_GRID = np.geomspace(0.01, 1.0, 60)
OVERHEAD_GRID_US = np.concatenate([[0.0], np.geomspace(1.0, 400.0, 50)])
BANDWIDTH_GRID = (0.2, 0.3, 0.5, 0.7, 1.0)
ACTIVATION_GRID_NS = np.concatenate([[0.0], np.geomspace(0.01, 2.0, 24)])
# Student's t, 95th percentile, by degrees of freedom: a two-sided 90 % prediction interval from n errors
T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
       12: 1.782, 15: 1.753, 20: 1.725, 30: 1.697}


@dataclass(frozen=True)
class _Arrays:
    flops: np.ndarray
    bytes: np.ndarray
    kernels: float  # nodes that launch a kernel
    fold_bytes: float  # bytes of folded (epilogue) nodes
    lookups: float  # outputs of sigmoid-like activations


def _arrays(facts: ModelFacts, precision: str, align: int) -> _Arrays:
    element = BYTES.get(precision, 4)
    launched = [n for n in facts.nodes if n.kind not in ("free", "epilogue")]
    folded = [n for n in facts.nodes if n.kind == "epilogue"]
    return _Arrays(np.array([aligned_flops(n, align) for n in launched], float),
                   np.array([(n.weight_elements + n.activation_elements) * element for n in launched], float),
                   float(len(launched)), float(sum(n.weight_elements for n in folded) * element),
                   float(sum(n.nonlinear_elements for n in facts.nodes if n.kind != "free")))


def _predict(arrays: _Arrays, model: CostModel, bandwidth_efficiency: float, compute: np.ndarray,
             overhead_us: np.ndarray, activation_ns: np.ndarray) -> np.ndarray:
    """Seconds for every (compute efficiency, overhead, activation cost) on the grid, at one bandwidth."""
    bandwidth = model.bandwidth_gbs * 1e9 * bandwidth_efficiency
    compute_s = arrays.flops[None, :] / (model.peak_tops * 1e12 * compute[:, None])  # (C, nodes)
    memory_s = arrays.bytes[None, :] / bandwidth
    work = np.maximum(compute_s, memory_s).sum(axis=1) + arrays.fold_bytes / bandwidth  # (C,)
    return (work[:, None, None] + arrays.kernels * overhead_us[None, :, None] * 1e-6
            + arrays.lookups * activation_ns[None, None, :] * 1e-9)


def fit(points: list[tuple[ModelFacts, float]], base: CostModel, precision: str, fit_overhead: bool = True) -> CostModel:
    """`base` with the efficiencies, overhead and activation cost that minimise the largest |log error| over
    the (model facts, published ms) points. With a single point only the compute efficiency is fitted (one
    figure cannot tell the others apart)."""
    single = not fit_overhead or len(points) < 2
    overheads = np.array([base.node_overhead_us]) if single else OVERHEAD_GRID_US
    activations = np.array([base.activation_ns]) if single else ACTIVATION_GRID_NS
    bandwidths = (base.bandwidth_efficiency,) if single else BANDWIDTH_GRID
    arrays = [(_arrays(facts, precision, base.channel_align), published) for facts, published in points]
    best: tuple[float, float, tuple[int, ...]] | None = None
    for bandwidth in bandwidths:
        worst = np.zeros((len(COMPUTE_GRID), len(overheads), len(activations)))
        for array, published_ms in arrays:
            predicted = _predict(array, base, bandwidth, COMPUTE_GRID, overheads, activations) * 1e3
            worst = np.maximum(worst, np.abs(np.log(predicted / published_ms)))
        index = tuple(int(i) for i in np.unravel_index(int(np.argmin(worst)), worst.shape))
        if best is None or worst[index] < best[0] - 1e-12:
            best = (float(worst[index]), bandwidth, index)
    assert best is not None
    _, bandwidth, (i, j, k) = best
    return base.model_copy(update={"compute_efficiency": float(COMPUTE_GRID[i]), "node_overhead_us": float(overheads[j]),
                                   "activation_ns": float(activations[k]), "bandwidth_efficiency": bandwidth})


def predict_ms(facts: ModelFacts, model: CostModel, precision: str) -> float:
    arrays = _arrays(facts, precision, model.channel_align)
    return float(_predict(arrays, model, model.bandwidth_efficiency, np.array([model.compute_efficiency]),
                          np.array([model.node_overhead_us]), np.array([model.activation_ns]))[0, 0, 0] * 1e3)


def leave_one_out(points: list[tuple[ModelFacts, float]], base: CostModel, precision: str) -> list[float | None]:
    """Per point, the relative error (predicted / published - 1) of a fit on the other points; None
    where there is no other point to fit on."""
    errors: list[float | None] = []
    for index, (facts, published_ms) in enumerate(points):
        others = points[:index] + points[index + 1:]
        if not others:
            errors.append(None)
            continue
        fitted = fit(others, base, precision, fit_overhead=len(others) > 1)
        errors.append(predict_ms(facts, fitted, precision) / published_ms - 1)
    return errors


def error_factor(errors: list[float | None], floor: float = 1.1) -> float:
    """The factor f of the stated range [estimate / f, estimate x f], from held-out errors: the larger of the
    largest held-out miss and a 90 % prediction interval (Student's t on the log errors' root mean square,
    widened for the sample's size), so a few lucky held-out points do not make the range narrow."""
    known = [e for e in errors if e is not None]
    if not known or any(not math.isfinite(e) or e <= -1 for e in known):
        return math.inf  # nothing held out, or a held-out miss no finite factor holds
    logs = [math.log1p(e) for e in known]
    worst = math.exp(max(abs(x) for x in logs))
    n = len(logs)
    if n >= 2:
        t = T95[max(k for k in T95 if k <= n - 1)]
        rms = math.sqrt(sum(x * x for x in logs) / n)
        worst = max(worst, math.exp(t * rms * math.sqrt(1 + 1 / n)))
    return math.ceil(max(floor, worst) * 100) / 100  # up: the range must hold them
