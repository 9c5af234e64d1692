"""Fitting a cost model's efficiencies to published latencies, and stating its error honestly.

The fit is a grid search in log space (a few thousand candidates; no SciPy needed) that minimises
the largest relative error over the points. With as many free parameters as points the fit is exact
and says nothing about other models, so the error we state is the leave-one-out error: fit on all
points but one, predict that one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgecheck.analysis.costs import ModelFacts
from edgecheck.analysis.estimate import BYTES
from edgecheck.devices import CostModel

COMPUTE_GRID = np.geomspace(0.01, 1.0, 60)
OVERHEAD_GRID_US = np.concatenate([[0.0], np.geomspace(1.0, 400.0, 50)])


@dataclass(frozen=True)
class _Arrays:
    flops: np.ndarray
    bytes: np.ndarray
    kernel: np.ndarray  # 1 where the node launches a kernel
    fold_bytes: np.ndarray  # bytes of folded (epilogue) nodes


def _arrays(facts: ModelFacts, precision: str) -> _Arrays:
    element = BYTES.get(precision, 4)
    rows = [(n.flops, (n.weight_elements + n.activation_elements) * element, n.kind, n.weight_elements * element)
            for n in facts.nodes if n.kind != "free"]
    flops = np.array([r[0] if r[2] != "epilogue" else 0 for r in rows], float)
    moved = np.array([r[1] if r[2] != "epilogue" else 0 for r in rows], float)
    kernel = np.array([r[2] != "epilogue" for r in rows], float)
    fold = np.array([r[3] if r[2] == "epilogue" else 0 for r in rows], float)
    return _Arrays(flops, moved, kernel, fold)


def _predict(arrays: _Arrays, model: CostModel, compute: np.ndarray, overhead_us: np.ndarray) -> np.ndarray:
    """Seconds for every (compute efficiency, overhead) pair on the grid: shape (len(compute), len(overhead))."""
    bandwidth = model.bandwidth_gbs * 1e9 * model.bandwidth_efficiency
    compute_s = arrays.flops[None, :] / (model.peak_tops * 1e12 * compute[:, None])  # (C, nodes)
    memory_s = arrays.bytes[None, :] / bandwidth
    work = np.maximum(compute_s, memory_s).sum(axis=1) + arrays.fold_bytes.sum() / bandwidth  # (C,)
    return work[:, None] + arrays.kernel.sum() * overhead_us[None, :] * 1e-6


def fit(points: list[tuple[ModelFacts, float]], base: CostModel, precision: str, fit_overhead: bool = True) -> CostModel:
    """`base` with compute_efficiency (and node_overhead_us, unless a single point cannot tell the two
    apart) chosen to minimise the largest |log error| over the (model facts, published ms) points;
    bandwidth efficiency stays as given."""
    overheads = OVERHEAD_GRID_US if fit_overhead else np.array([base.node_overhead_us])
    worst = np.zeros((len(COMPUTE_GRID), len(overheads)))
    for facts, published_ms in points:
        predicted = _predict(_arrays(facts, precision), base, COMPUTE_GRID, overheads) * 1e3
        worst = np.maximum(worst, np.abs(np.log(predicted / published_ms)))
    i, j = np.unravel_index(int(np.argmin(worst)), worst.shape)
    return base.model_copy(update={"compute_efficiency": float(COMPUTE_GRID[i]),
                                   "node_overhead_us": float(overheads[j])})


def predict_ms(facts: ModelFacts, model: CostModel, precision: str) -> float:
    arrays = _arrays(facts, precision)
    return float(_predict(arrays, model, np.array([model.compute_efficiency]),
                          np.array([model.node_overhead_us]))[0, 0] * 1e3)


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


def error_factor(errors: list[float | None], floor: float = 1.25) -> float:
    """The factor f such that every held-out prediction lies within [published / f, published × f]."""
    factors = [max(1 + e, 1 / (1 + e)) for e in errors if e is not None and e > -1]
    return math.ceil(max([floor, *factors]) * 100) / 100 if factors else math.inf  # up: the range must hold them
