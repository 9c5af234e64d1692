"""Inputs to run a model on: batches from the spec's labelled data, or seeded synthetic ones.

Arrays are loaded with `allow_pickle=False`: a data file can never execute code. Every mismatch
between the data and the model's inputs names the file, the array and the input.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecheck.errors import DataError
from edgecheck.model import ModelInfo, TensorInfo
from edgecheck.spec import LoadedSpec

Feed = dict[str, np.ndarray]
MAX_BATCH = 32


@dataclass(frozen=True)
class InputSet:
    """Feeds to run one after another; labels (if any) line up with the outputs concatenated on axis 0."""

    feeds: tuple[Feed, ...]
    source: str
    labels: np.ndarray | None = None


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: cannot read as .npz without pickles: {exc}") from None


def evaluation_set(loaded: LoadedSpec, model: ModelInfo, limit: int | None = None) -> InputSet:
    """The labelled evaluation data, cut into batches the model accepts."""
    evaluation = loaded.spec.data.evaluation
    if evaluation is None:
        raise DataError(f"{loaded.path}: data.evaluation is not set")
    path = evaluation.path
    arrays = load_npz(path)
    if evaluation.labels not in arrays:
        raise DataError(f"{path}: no labels array {evaluation.labels!r} (arrays: {', '.join(arrays) or 'none'})")
    labels = arrays.pop(evaluation.labels)
    columns = columns_for(model, arrays, path)
    count = len(labels)
    for name, column in columns.items():
        if column.ndim == 0:
            raise DataError(f"{path}: array for input {name!r} is a scalar; samples go along the first axis")
        if column.shape[0] != count:
            raise DataError(f"{path}: array for input {name!r} has {column.shape[0]} samples, labels have {count}")
    if labels.ndim == 0 or count == 0:
        raise DataError(f"{path}: labels array {evaluation.labels!r} holds no samples")
    cap = min(x for x in (count, evaluation.limit, limit) if x is not None)
    lead = _fixed_batch(model)
    if lead > 1:  # a fixed batch size: whole batches only, at least one
        if count < lead:
            raise DataError(f"{path}: {count} samples are fewer than one batch of {lead} (the model's fixed batch size)")
        cap = max(cap - cap % lead, lead)
    feeds = _batches(model, {k: v[:cap] for k, v in columns.items()}, path)
    return InputSet(feeds, f"{path.name} ({cap} of {count} samples)", labels[:cap])


def parity_set(loaded: LoadedSpec, model: ModelInfo) -> InputSet:
    """Inputs for parity: the evaluation data when the spec has it, else seeded synthetic inputs."""
    samples = loaded.spec.data.parity_samples
    if loaded.spec.data.evaluation is not None:
        subset = evaluation_set(loaded, model, limit=samples)
        return InputSet(subset.feeds, subset.source)
    return synthetic_set(loaded, model, samples)


def calibration_feeds(model: ModelInfo, path: Path, limit: int | None = None) -> InputSet:
    """Representative inputs (no labels) for INT8 calibration, in file order, in batches the model takes."""
    columns = columns_for(model, load_npz(path), path)
    counts = {len(c) if c.ndim else 0 for c in columns.values()}
    if len(counts) != 1 or 0 in counts:
        raise DataError(f"{path}: calibration arrays must hold the same number (> 0) of samples along the "
                        f"first axis, got {sorted(counts)}")
    count = counts.pop()
    cap = min(count, limit) if limit else count
    lead = _fixed_batch(model)
    if lead > 1:
        if count < lead:
            raise DataError(f"{path}: {count} samples are fewer than one batch of {lead} (the model's fixed batch size)")
        cap = max(cap - cap % lead, lead)
    feeds = _batches(model, {k: v[:cap] for k, v in columns.items()}, path)
    return InputSet(feeds, f"{path.name} ({cap} of {count} samples)")


def columns_for(model: ModelInfo, arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """The array for each model input: by name, or the only array of a single-input model."""
    columns: dict[str, np.ndarray] = {}
    for tensor in model.inputs:
        if tensor.name in arrays:
            columns[tensor.name] = arrays[tensor.name]
        elif len(model.inputs) == 1 and len(arrays) == 1:
            columns[tensor.name] = next(iter(arrays.values()))
        else:
            raise DataError(
                f"{path}: no array for model input {tensor.name!r} (arrays: {', '.join(arrays) or 'none'})"
            )
    return columns


def _fixed_batch(model: ModelInfo) -> int:
    """The model's fixed leading dimension (1 if it has none or it is dynamic)."""
    leads = {t.shape[0] for t in model.inputs if t.shape and isinstance(t.shape[0], int) and t.shape[0] >= 1}
    return max(leads) if leads else 1


def has_fixed_batch(model: ModelInfo) -> bool:
    """Whether some input's leading dimension is a fixed number (then feeds come in whole batches)."""
    return any(t.shape and isinstance(t.shape[0], int) and t.shape[0] >= 1 for t in model.inputs)


def _batches(model: ModelInfo, columns: dict[str, np.ndarray], path: Path) -> tuple[Feed, ...]:
    """Split sample-major arrays into feeds whose leading dimension the model accepts."""
    batch = _fixed_batch(model) if has_fixed_batch(model) else MAX_BATCH
    prepared: dict[str, np.ndarray] = {}
    for tensor in model.inputs:
        column = _conform(tensor, columns[tensor.name], path)
        lead = tensor.shape[0] if tensor.shape else None
        if isinstance(lead, int) and lead >= 1 and column.shape[0] % lead:
            raise DataError(f"{path}: {column.shape[0]} samples for input {tensor.name!r} do not split into "
                            f"batches of {lead} (the model's fixed batch size)")
        prepared[tensor.name] = column
    total = next(iter(prepared.values())).shape[0] if prepared else 0
    return tuple({k: v[i:i + batch] for k, v in prepared.items()} for i in range(0, total, batch))


def _conform(tensor: TensorInfo, column: np.ndarray, path: Path) -> np.ndarray:
    where = f"{path}: array for input {tensor.name!r}"
    if tensor.shape:
        if column.ndim != len(tensor.shape):
            raise DataError(f"{where} has shape {list(column.shape)}; the model expects {tensor.shape_text()} "
                            "with samples along the first axis")
        for axis, (want, got) in enumerate(zip(tensor.shape[1:], column.shape[1:]), start=1):
            if isinstance(want, int) and want >= 1 and want != got:
                raise DataError(f"{where} has shape {list(column.shape)}; the model expects {tensor.shape_text()} "
                                f"(axis {axis} differs)")
    return _cast(column, tensor.dtype, where)


def _cast(column: np.ndarray, dtype: str, where: str) -> np.ndarray:
    if column.dtype.name == dtype:
        return column
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise DataError(f"{where}: the model's input type {dtype} is not supported") from None
    same_kind = (np.issubdtype(column.dtype, np.floating) and np.issubdtype(target, np.floating)) or (
        np.issubdtype(column.dtype, np.integer) and np.issubdtype(target, np.integer)
    )
    if not same_kind:
        raise DataError(f"{where} is {column.dtype.name}; the model takes {dtype}")
    return column.astype(target)


def synthetic_shape(tensor: TensorInfo, declared: list[int] | None) -> tuple[int, ...] | str:
    """The concrete shape to generate, or a message saying which dimensions the spec must fix."""
    if declared is not None:
        if tensor.shape and len(declared) != len(tensor.shape):
            return f"has rank {len(tensor.shape)} {tensor.shape_text()}; the spec's shape {declared} has rank {len(declared)}"
        for axis, (want, got) in enumerate(zip(tensor.shape, declared)):
            if isinstance(want, int) and want >= 1 and want != got:
                return f"has shape {tensor.shape_text()}; the spec's shape {declared} differs on axis {axis}"
        return tuple(declared)
    dynamic = tensor.dynamic_dims
    if dynamic and dynamic != [0]:
        names = [str(tensor.shape[i]) for i in dynamic]
        return f"has dynamic dimensions {names} in {tensor.shape_text()}: give inputs.{tensor.name}.shape in the spec"
    return tuple(d if isinstance(d, int) and d >= 1 else 1 for d in tensor.shape)


def synthetic_set(loaded: LoadedSpec, model: ModelInfo, samples: int) -> InputSet:
    """Seeded inputs within each input's declared range, so any mismatch can be replayed."""
    seed = loaded.spec.data.seed
    rng = np.random.default_rng(seed)
    plans = []
    for tensor in model.inputs:
        declared = loaded.spec.inputs.get(tensor.name)
        shape = synthetic_shape(tensor, declared.shape if declared else None)
        if isinstance(shape, str):
            raise loaded.error(("inputs", tensor.name, "shape"), f"model input {tensor.name!r} {shape}")
        low, high = declared.range if declared else (0.0, 1.0)
        try:
            dtype = np.dtype(tensor.dtype)
        except TypeError:
            raise DataError(f"model input {tensor.name!r} is {tensor.dtype}: edgecheck cannot make synthetic "
                            "inputs of that type; give data.evaluation") from None
        plans.append((tensor.name, shape, dtype, low, high))
    feeds = []
    for _ in range(samples):
        feed: Feed = {}
        for name, shape, dtype, low, high in plans:
            if dtype == np.bool_:
                feed[name] = rng.random(shape) < 0.5
            elif np.issubdtype(dtype, np.integer):
                feed[name] = rng.integers(int(np.ceil(low)), int(np.floor(high)) + 1, size=shape).astype(dtype)
            else:
                feed[name] = rng.uniform(low, high, size=shape).astype(dtype)
        feeds.append(feed)
    return InputSet(tuple(feeds), f"synthetic ({samples} inputs, seed {seed})")
