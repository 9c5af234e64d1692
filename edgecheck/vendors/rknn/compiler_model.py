"""Latency from what rknn-toolkit2's compiler says of a build: its per-layer cycle counts, plus the two costs
its cycles leave out, each fitted on published figures: the bytes its layer table says each layer reads
and writes (an Add or a Concat moves megabytes at 0 cycles) and the sigmoid-like activations it fuses into
a convolution (a SiLU network takes 1.5x its ReLU twin at identical cycles). A per-layer model in the sense
of nn-Meter, kept because it is more accurate out of sample than the single scale it replaces
(benchmarks/bench_rknn_estimate.py prints both).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from edgecheck.vendors.rknn.build_log import BuildLog, shape_elements

ACTIVATION = re.compile(r"Swish|Sigmoid|Silu|Tanh|Mish|Gelu|Softplus", re.IGNORECASE)


@dataclass(frozen=True)
class CompilerFeatures:
    """What the build log says of one model, in the units the fitted coefficients take."""

    cycles_ms: float  # the compiler's total cycles at the NPU clock, ms
    rw_mb: float  # MiB the NPU layers read and write, by the layer table
    activation_melements: float  # millions of outputs of NPU layers with a sigmoid-like activation
    unread: tuple[str, ...] = ()  # activation layers whose output shape the table cuts short: not counted

    def vector(self) -> np.ndarray:
        return np.array([self.cycles_ms, self.rw_mb, self.activation_melements])


def features(log: BuildLog, clock_ghz: float) -> CompilerFeatures:
    npu = [layer for layer in log.layers if not layer.boundary and layer.target != "CPU"]
    activations = [(layer, shape_elements(layer.output_shape)) for layer in npu if ACTIVATION.search(layer.op_type)]
    return CompilerFeatures(log.cycles_total / (clock_ghz * 1e6), sum(layer.rw_kb for layer in npu) / 1024,
                            sum(n for _, n in activations if n is not None) / 1e6,
                            tuple(layer.full_name for layer, n in activations if n is None))


def predict(coefficients: tuple[float, float, float], found: CompilerFeatures) -> float:
    """ms = scale x cycles at the clock + ms per MiB moved x MiB + ms per million activations x millions."""
    return float(np.dot(coefficients, found.vector()))


def fit(rows: list[tuple[CompilerFeatures, float]], use: tuple[bool, bool, bool] = (True, True, True)
        ) -> tuple[float, float, float]:
    """Non-negative coefficients minimising the squared relative error over (features, published ms) rows:
    least squares on every subset of the features in `use` (the cycles always in), the best feasible one."""
    a = np.array([f.vector() / ms for f, ms in rows])
    best: tuple[float, np.ndarray] | None = None
    optional = [i for i in (1, 2) if use[i]]
    for k in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, k):
            columns = [0, *chosen]
            x, *_ = np.linalg.lstsq(a[:, columns], np.ones(len(rows)), rcond=None)
            if (x < 0).any():
                continue
            full = np.zeros(3)
            full[columns] = x
            loss = float(np.sum((a @ full - 1) ** 2))
            if best is None or loss < best[0]:
                best = (loss, full)
    assert best is not None, "no non-negative fit (the cycles alone always give one)"
    return tuple(float(v) for v in best[1])  # type: ignore[return-value]


def leave_one_out(rows: list[tuple[CompilerFeatures, float]], use: tuple[bool, bool, bool] = (True, True, True)
                  ) -> list[float]:
    """Per row, the relative error of a fit on the other rows."""
    return [predict(fit(rows[:i] + rows[i + 1:], use), f) / ms - 1 for i, (f, ms) in enumerate(rows)]
