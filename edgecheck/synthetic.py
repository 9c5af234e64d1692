"""Seeded synthetic inputs within each input's declared range, so a mismatch can be replayed; fixed
inputs get their value, and a dynamic batch dimension (at the input's batch axis) is 1.

Below edgecheck.data, which lays them out as an input set (data.synthetic_set) beside the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgecheck.errors import DataError
from edgecheck.model import ModelInfo, TensorInfo
from edgecheck.spec import LoadedSpec


def synthetic_shape(tensor: TensorInfo, declared: list[int] | None, batch_axis: int = 0) -> tuple[int, ...] | str:
    """The concrete shape to generate, or a message saying which dimensions the spec must fix."""
    if declared is not None:
        if tensor.shape and len(declared) != len(tensor.shape):
            return f"has rank {len(tensor.shape)} {tensor.shape_text()}; the spec's shape {declared} has rank {len(declared)}"
        for axis, (want, got) in enumerate(zip(tensor.shape, declared)):
            if isinstance(want, int) and want >= 1 and want != got:
                return f"has shape {tensor.shape_text()}; the spec's shape {declared} differs on axis {axis}"
        return tuple(declared)
    dynamic = tensor.dynamic_dims
    if dynamic and dynamic != [batch_axis]:
        names = [str(tensor.shape[i]) for i in dynamic]
        return f"has dynamic dimensions {names} in {tensor.shape_text()}: give inputs.{tensor.name}.shape in the spec"
    return tuple(d if isinstance(d, int) and d >= 1 else 1 for d in tensor.shape)


def synthetic_feeds(loaded: LoadedSpec, model: ModelInfo, samples: int, fixed: Mapping[str, np.ndarray],
                    batch_axes: Mapping[str, int | None]) -> tuple[dict[str, np.ndarray], ...]:
    """`samples` seeded feeds within each input's declared range, so any mismatch can be replayed;
    `fixed` inputs get their value, each other input's samples go along its axis in `batch_axes`."""
    seed = loaded.spec.data.seed
    rng = np.random.default_rng(seed)
    plans = []
    for tensor in model.inputs:
        declared = loaded.spec.inputs.get(tensor.name)
        if tensor.name in fixed:
            continue
        if declared is not None and declared.fixed == "data":
            raise loaded.error(("inputs", tensor.name, "fixed"), f"input {tensor.name!r} is fixed to the data files' "
                               "array, and parity runs on synthetic inputs here (no data.parity, data.evaluation or "
                               "data.calibration)")
        shape = synthetic_shape(tensor, declared.shape if declared else None, batch_axes.get(tensor.name, 0) or 0)
        if isinstance(shape, str):
            raise loaded.error(("inputs", tensor.name, "shape"), f"model input {tensor.name!r} {shape}")
        low, high = declared.range if declared else (0.0, 1.0)
        try:
            dtype = np.dtype(tensor.dtype)
        except TypeError:
            raise DataError(f"model input {tensor.name!r} is {tensor.dtype}: edgecheck cannot make synthetic "
                            "inputs of that type; give data.parity, data.evaluation or data.calibration") from None
        plans.append((tensor.name, shape, dtype, low, high))
    feeds = []
    for _ in range(samples):
        feed: dict[str, np.ndarray] = {}
        for name, shape, dtype, low, high in plans:
            if dtype == np.bool_:
                feed[name] = rng.random(shape) < 0.5
            elif np.issubdtype(dtype, np.integer):
                feed[name] = rng.integers(int(np.ceil(low)), int(np.floor(high)) + 1, size=shape).astype(dtype)
            else:
                feed[name] = rng.uniform(low, high, size=shape).astype(dtype)
        feed.update(fixed)
        feeds.append(feed)
    return tuple(feeds)
