"""Inputs to run a model on: batches from the spec's data files, or seeded synthetic ones.

Data files are read by `edgecheck.npzfile` (sizes checked from the headers first, never unpickled,
read once per process). Samples go along each input's batch axis (`inputs.<name>.batch_axis`, 0 by
default: a recurrent state [layers, batch, hidden] has 1); a fixed input (`inputs.<name>.fixed`, and
every scalar input) gets the same value in every feed. Every mismatch names the file, the array and
the input, and says what edgecheck would feed. Parity runs on real inputs where the spec has any
(data.parity, else the evaluation data, else the calibration data) before synthetic ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecheck.errors import DataError
from edgecheck.labels import check_labels
from edgecheck.model import ModelInfo, TensorInfo
from edgecheck.npzfile import DEFAULT_MAX_MB, LAYOUT_MEMBER, load_npz as _load_npz, write_npz
from edgecheck.spec import LoadedSpec
from edgecheck.synthetic import synthetic_feeds

Feed = dict[str, np.ndarray]
MAX_BATCH = 32
WORKER_MAX_MB = 1_048_576  # in a worker its own memory limit bounds reading; the session checked the file first


@dataclass(frozen=True)
class Layout:
    """How each model input is fed: the axis its samples go along, or None for a fixed input (the
    same value in every feed: `values` from the spec, or else the data file's array, fed whole)."""

    batch_axes: Mapping[str, int | None]
    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    from_data: frozenset[str] = frozenset()  # fixed inputs the spec says come from the data file (fixed: data)

    def axis(self, name: str) -> int | None:
        return self.batch_axes.get(name, 0)

    @property
    def explicit(self) -> bool:
        """Whether feeding needs more than the defaults (samples on axis 0, scalars fixed)."""
        return bool(self.values) or any(a not in (0, None) for a in self.batch_axes.values())


@dataclass(frozen=True)
class InputSet:
    """Feeds to run one after another; labels (if any) line up with the outputs concatenated on axis 0."""

    feeds: tuple[Feed, ...]
    source: str
    labels: np.ndarray | None = None
    batch_axes: Mapping[str, int | None] = field(default_factory=dict)  # None: a fixed input
    whole_batches: bool = False  # the model's batch size is fixed: a feed is one whole batch
    synthetic: bool = False

    @property
    def sample_count(self) -> int:
        """How many samples the feeds hold (a whole batch counts its samples)."""
        total = 0
        for feed in self.feeds:
            axes = {k: self.batch_axes.get(k, 0) for k in feed}
            total += next((_count(v, axes[k]) for k, v in feed.items() if axes[k] is not None), 1)
        return total

    def samples(self) -> Iterator[Feed]:
        """One sample per feed (one whole batch for a model with a fixed batch size); fixed inputs whole."""
        for feed in self.feeds:
            if self.whole_batches:
                yield dict(feed)
                continue
            axes = {k: self.batch_axes.get(k, 0) for k in feed}
            count = next((_count(v, axes[k]) for k, v in feed.items() if axes[k] is not None), 1)
            for index in range(count):
                yield {k: _take(v, axes[k], index, index + 1) for k, v in feed.items()}


def _count(array: np.ndarray, axis: int | None) -> int:
    return int(array.shape[axis]) if axis is not None and array.ndim > axis else 1


def _take(array: np.ndarray, axis: int | None, start: int, stop: int) -> np.ndarray:
    if axis is None:
        return array
    return array[(slice(None),) * axis + (slice(start, stop),)]


def first_sample(inputs: InputSet) -> Feed:
    """The fixed input timings run on: the first sample (the first whole batch for a fixed batch size)."""
    return next(inputs.samples())


def load_npz(path: Path, max_mb: float = DEFAULT_MAX_MB) -> dict[str, np.ndarray]:
    """The arrays of a data file (read-only, shared): see `edgecheck.npzfile.load_npz`."""
    return _load_npz(path, max_mb)


def layout_of(loaded: LoadedSpec | None, model: ModelInfo) -> Layout:
    """The spec's batch axes and fixed values for the model's inputs (every scalar input is fixed)."""
    axes: dict[str, int | None] = {}
    values: dict[str, np.ndarray] = {}
    from_data = set()
    declared_inputs = loaded.spec.inputs if loaded is not None else {}
    for tensor in model.inputs:
        declared = declared_inputs.get(tensor.name)
        if declared is not None and declared.fixed is not None:
            axes[tensor.name] = None
            if declared.fixed != "data":
                values[tensor.name] = fixed_value(tensor, declared.fixed)
            else:
                from_data.add(tensor.name)
        elif not tensor.shape:
            axes[tensor.name] = None
        else:
            axes[tensor.name] = declared.batch_axis if declared is not None else 0
    return Layout(axes, values, frozenset(from_data))


def fixed_value(tensor: TensorInfo, value: object) -> np.ndarray:
    """A spec's fixed value as the input's type and shape; `DataError` saying how it does not fit."""
    where = f"fixed value {value!r} of input {tensor.name!r}"
    try:
        array = np.asarray(value)
    except ValueError:  # a ragged nested list
        raise DataError(f"{where}: its lists are not all of one length, so it is not an array") from None
    if array.dtype == np.bool_ and tensor.dtype != "bool":  # `fixed: true` is no number
        raise DataError(f"{where}: true/false is not a number; the input is {tensor.dtype}")
    if tensor.quantized and np.issubdtype(array.dtype, np.floating):  # a real value: the runner quantizes it
        if not _fits(tensor, array.shape):
            raise DataError(f"{where} has shape {list(array.shape)}; the model's input is {tensor.shape_text()}")
        return array.astype(np.float32)
    try:
        target = np.dtype(tensor.dtype)
    except TypeError:
        raise DataError(f"{where}: the model's input type {tensor.dtype} is not supported") from None
    if np.issubdtype(target, np.integer) and not np.all(np.equal(np.mod(array, 1), 0)):
        raise DataError(f"{where}: the input is {tensor.dtype} and the value is not a whole number")
    if np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise DataError(f"{where}: outside {tensor.dtype}'s range {info.min}..{info.max}")
    if not _fits(tensor, array.shape):
        raise DataError(f"{where} has shape {list(array.shape)}; the model's input is {tensor.shape_text()}")
    return array.astype(target)


def _fits(tensor: TensorInfo, shape: tuple[int, ...], skip: int | None = None) -> bool:
    """Whether `shape` matches the tensor's rank and fixed dimensions (axis `skip` aside)."""
    if len(shape) != len(tensor.shape):
        return False
    return all(not (isinstance(want, int) and want >= 1) or want == got or axis == skip
               for axis, (want, got) in enumerate(zip(tensor.shape, shape)))


def describe_feed(model: ModelInfo, layout: Layout, arrays: Mapping[str, np.ndarray]) -> str:
    """What edgecheck feeds, per input, and what the model takes: 'x [64, 4] float32, state [2, 64, 128]
    float32 (samples on axis 1), sr [] int64 (fixed); the model takes ...'."""
    parts = []
    for tensor in model.inputs:
        axis = layout.axis(tensor.name)
        array = layout.values.get(tensor.name, arrays.get(tensor.name))
        shape = f"{list(array.shape)} {array.dtype.name}" if array is not None else "(no array)"
        how = " (fixed)" if axis is None else (f" (samples on axis {axis})" if axis else "")
        parts.append(f"{tensor.name} {shape}{how}")
    takes = ", ".join(f"{t.name} {t.shape_text()} {t.dtype}" for t in model.inputs)
    return ", ".join(parts) + f"; the model takes {takes}"


def columns_for(model: ModelInfo, arrays: Mapping[str, np.ndarray], path: Path,
                layout: Layout | None = None) -> dict[str, np.ndarray]:
    """The array for each model input that the file must hold: by name, or a single-array file's
    only array for the only input that needs one."""
    layout = layout or layout_of(None, model)
    wanted = [t for t in model.inputs if t.name not in layout.values]
    columns: dict[str, np.ndarray] = {}
    for tensor in wanted:
        if tensor.name in arrays:
            columns[tensor.name] = arrays[tensor.name]
        elif len(wanted) == 1 and len(arrays) == 1:
            columns[tensor.name] = next(iter(arrays.values()))
        else:
            if tensor.name in layout.from_data:  # the spec already says fixed: data; the value itself would do
                value = "a number" if not tensor.shape else f"a list of shape {tensor.shape_text()}"
                fix = (f" (the spec says inputs.{tensor.name}.fixed: data: add the array to the file, or give "
                       f"the value itself, {value}: inputs: {{{tensor.name}: {{fixed: <{value}>}}}})")
            elif layout.axis(tensor.name) is None or not tensor.shape:
                fix = f" (or give inputs.{tensor.name}.fixed in the spec)"
            else:
                fix = ""
            raise DataError(f"{path}: no array for model input {tensor.name!r}{fix} (arrays: "
                            f"{', '.join(arrays) or 'none'}); edgecheck feeds "
                            f"{describe_feed(model, layout, arrays)}")
    return columns


def _batch_size(model: ModelInfo, layout: Layout) -> int | None:
    """The model's fixed batch size (a fixed dimension at some input's batch axis), or None if open."""
    leads = {}
    for tensor in model.inputs:
        axis = layout.axis(tensor.name)
        if axis is not None and axis < len(tensor.shape):
            dim = tensor.shape[axis]
            if isinstance(dim, int) and dim >= 1:
                leads[tensor.name] = dim
    if len(set(leads.values())) > 1:
        said = ", ".join(f"{n!r} {d} on axis {layout.axis(n)}" for n, d in leads.items())
        fixes = _batch_fixes(model, layout, leads)
        fix = ("set " + " or ".join(f"inputs: {f}" for f in fixes) + " in the spec" if fixes else
               "set inputs.<name>.batch_axis (or fixed) in the spec for the inputs whose batch is not on that axis")
        raise DataError(f"the model's inputs disagree on the batch size ({said}): {fix}")
    return next(iter(leads.values()), None)


def _batch_fixes(model: ModelInfo, layout: Layout, leads: Mapping[str, int]) -> list[str]:
    """Spec lines that make the batch sizes agree, read off the shapes, as alternatives (fewest changes):
    for a batch size some input has, every other input needs another axis of that size as its batch
    axis, or holds one value (then it is fixed)."""
    solutions: list[list[str]] = []
    for size in dict.fromkeys(leads.values()):
        changes = []
        for tensor in model.inputs:
            if tensor.name not in leads or leads[tensor.name] == size:
                continue
            axis = layout.axis(tensor.name)
            match = [i for i, d in enumerate(tensor.shape) if d == size and i != axis]
            if all(d == 1 for d in tensor.shape):  # one value: the same for every sample
                changes.append(f"{tensor.name}: {{fixed: <its value>}}")
            elif len(match) == 1:
                changes.append(f"{tensor.name}: {{batch_axis: {match[0]}}}")
            else:
                break
        else:
            solutions.append(changes)
    fewest = min((len(c) for c in solutions), default=0)
    return ["{" + ", ".join(c) + "}" for c in solutions if len(c) == fewest]


def has_fixed_batch(model: ModelInfo, layout: Layout | None = None) -> bool:
    """Whether some input's batch dimension is a fixed number (then feeds come in whole batches)."""
    try:
        return _batch_size(model, layout or layout_of(None, model)) is not None
    except DataError:
        return True


def prepare(model: ModelInfo, layout: Layout, arrays: Mapping[str, np.ndarray], path: Path,
            limit: int | None = None, count: int | None = None) -> tuple[tuple[Feed, ...], int, int]:
    """Feeds in batches the model takes; returns (feeds, samples used, samples in the file). `count`
    is the number of labels, which the inputs' samples must match."""
    columns = columns_for(model, arrays, path, layout)
    fed = {**columns, **layout.values}

    def fail(message: str) -> DataError:
        return DataError(f"{path}: {message}; edgecheck feeds {describe_feed(model, layout, fed)}")

    batched, fixed = {}, dict(layout.values)
    for tensor in model.inputs:
        axis = layout.axis(tensor.name)
        if tensor.name in layout.values:
            continue
        column = columns[tensor.name]
        if axis is None:  # fed whole: the data file's array is the input itself
            if not _fits(tensor, column.shape):
                raise fail(f"array for fixed input {tensor.name!r} has shape {list(column.shape)}; the model "
                           f"takes {tensor.shape_text()} (a fixed input is fed whole to every sample)")
            fixed[tensor.name] = _cast(column, tensor, f"{path}: array for input {tensor.name!r}")
            continue
        if column.ndim == 0:
            raise fail(f"array for input {tensor.name!r} is a single value; samples go along axis {axis} (or give "
                       f"inputs.{tensor.name}.fixed)")
        if not _fits(tensor, column.shape, skip=axis):
            raise fail(f"array for input {tensor.name!r} has shape {list(column.shape)}; the model expects "
                       f"{tensor.shape_text()} with samples along axis {axis}")
        batched[tensor.name] = _cast(column, tensor, f"{path}: array for input {tensor.name!r}")
        _check_finite(batched[tensor.name], tensor.name, axis, path)
    for name, value in fixed.items():
        _check_finite(value, name, None, path)
    counts = {name: column.shape[layout.axis(name)] for name, column in batched.items()}  # type: ignore[index]
    if count is not None:
        counts = {**counts, "labels": count}
    if len(set(counts.values())) > 1:
        raise fail("arrays hold different numbers of samples (" +
                   ", ".join(f"{n}: {c}" for n, c in counts.items()) + ")")
    total = next(iter(counts.values()), 1)
    if total == 0:
        raise fail("no samples (the arrays are empty along the batch axis)")
    try:
        lead = _batch_size(model, layout)
    except DataError as exc:
        raise fail(str(exc)) from None
    cap = min(x for x in (total, limit) if x is not None)
    if lead is not None and lead > 1:  # whole batches only, at least one
        if total < lead:
            raise fail(f"{total} samples are fewer than one batch of {lead} (the model's fixed batch size)")
        cap = max(cap - cap % lead, lead)
    batch = lead or MAX_BATCH
    if not batched:  # every input fixed: one feed
        return ({**fixed},), 1, 1
    feeds = tuple({**{k: _take(v, layout.axis(k), i, min(i + batch, cap)) for k, v in batched.items()}, **fixed}
                  for i in range(0, cap, batch))
    return feeds, cap, total


def _source(path: Path, cap: int, count: int, model: ModelInfo, layout: Layout,
            arrays: Mapping[str, np.ndarray]) -> str:
    """How the inputs are described in results: the file, the samples used, and a single array fed to
    an input of another name (said, since it may be a mix-up)."""
    text = f"{path.name} ({cap} of {count} samples"
    wanted = [t.name for t in model.inputs if t.name not in layout.values]
    if len(wanted) == 1 and len(arrays) == 1 and wanted[0] not in arrays:
        text += f"; its only array {next(iter(arrays))!r} fed to input {wanted[0]!r}"
    for name, value in layout.values.items():  # the spec's value wins; a file that says otherwise is said
        held = arrays.get(name)
        if held is not None and not (held.shape == value.shape and np.array_equal(held, value)):
            text += (f"; note: the spec fixes input {name!r} to {_value_text(value)}, the file's array {name!r} "
                     f"holds {_value_text(held)}: the spec's value is fed")
    return text + ")"


def _value_text(array: np.ndarray) -> str:
    """A value as a note shows it: small arrays in full, larger ones by shape and type."""
    if array.size <= 4:
        return str(array.tolist())
    return f"a {list(array.shape)} {array.dtype.name} array"


def input_hint(loaded: LoadedSpec, model: ModelInfo, inputs: InputSet) -> str:
    """Which spec fields decide inputs that are not real data: the fixed values, and on synthetic
    inputs the ranges left at their default; '' when every input comes from a data file."""
    layout = layout_of(loaded, model)
    parts = [f"inputs.{name}.fixed (now {_value_text(value)})" for name, value in layout.values.items()]
    if inputs.synthetic:
        for tensor in model.inputs:
            declared = loaded.spec.inputs.get(tensor.name)
            if tensor.name not in layout.values and (declared is None or "range" not in declared.model_fields_set):
                parts.append(f"inputs.{tensor.name}.range (synthetic, drawn from the default [0, 1])")
    return ", ".join(parts)


def _check_finite(array: np.ndarray, name: str, axis: int | None, path: Path) -> None:
    """NaN or Inf in inputs would make every statistic meaningless: refuse them, counted and placed."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    count = int(np.count_nonzero(bad))
    if count:
        nan = int(np.count_nonzero(np.isnan(array)))
        where = np.argwhere(bad)[0]
        sample = f"sample {int(where[axis])}, " if axis is not None else ""
        share = " (all of them)" if count == array.size else f" of {array.size}"
        raise DataError(f"{path}: array for input {name!r} holds {nan} NaN and {count - nan} Inf values{share}, "
                        f"first at {sample}index {[int(i) for i in where]}: data must be finite numbers")


def _cast(column: np.ndarray, tensor: TensorInfo, where: str) -> np.ndarray:
    """The column as the input's type; real values for a quantized input stay real (float32), since the
    runner quantizes them with the input's scale and zero point."""
    dtype = tensor.dtype
    if column.dtype.name == dtype:
        return column
    if tensor.quantized and np.issubdtype(column.dtype, np.floating):
        return column.astype(np.float32)
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise DataError(f"{where}: the model's input type {dtype} is not supported") from None
    same_kind = (np.issubdtype(column.dtype, np.floating) and np.issubdtype(target, np.floating)) or (
        np.issubdtype(column.dtype, np.integer) and np.issubdtype(target, np.integer)
    ) or (column.dtype == np.bool_ and target == np.bool_)
    if not same_kind:
        raise DataError(f"{where} is {column.dtype.name}; the model takes {dtype}")
    return column.astype(target)


def evaluation_set(loaded: LoadedSpec, model: ModelInfo, limit: int | None = None) -> InputSet:
    """The labelled evaluation data, cut into batches the model accepts; labels checked for the metric."""
    evaluation = loaded.spec.data.evaluation
    if evaluation is None:
        raise DataError(f"{loaded.path}: data.evaluation is not set")
    path = evaluation.path
    arrays = load_npz(path, loaded.spec.data.max_mb)
    if evaluation.labels not in arrays:
        raise DataError(f"{path}: no labels array {evaluation.labels!r} (arrays: {', '.join(arrays) or 'none'})")
    arrays = dict(arrays)
    labels = check_labels(arrays.pop(evaluation.labels), evaluation, model, path)
    layout = layout_of(loaded, model)
    cap_limit = min((x for x in (evaluation.limit, limit) if x is not None), default=None)
    feeds, cap, count = prepare(model, layout, arrays, path, cap_limit, count=len(labels))
    return InputSet(feeds, _source(path, cap, count, model, layout, arrays), labels[:cap], dict(layout.batch_axes),
                    _batch_size(model, layout) is not None)


def unlabelled_set(loaded: LoadedSpec, model: ModelInfo, path: Path, limit: int | None) -> InputSet:
    """Inputs without labels (data.parity), in file order."""
    layout = layout_of(loaded, model)
    arrays = load_npz(path, loaded.spec.data.max_mb)
    feeds, cap, count = prepare(model, layout, arrays, path, limit)
    return InputSet(feeds, _source(path, cap, count, model, layout, arrays), None, dict(layout.batch_axes),
                    _batch_size(model, layout) is not None)


def parity_set(loaded: LoadedSpec, model: ModelInfo) -> InputSet:
    """Inputs for parity: data.parity, else the evaluation data, else the calibration data (real
    inputs all the same), else seeded synthetic inputs."""
    data = loaded.spec.data
    if data.parity is not None:
        return unlabelled_set(loaded, model, data.parity, data.parity_samples)
    if data.evaluation is not None:
        subset = evaluation_set(loaded, model, limit=data.parity_samples)
        return InputSet(subset.feeds, subset.source, None, subset.batch_axes, subset.whole_batches)
    if data.calibration is not None:
        subset = unlabelled_set(loaded, model, data.calibration, data.parity_samples)
        return InputSet(subset.feeds, f"{subset.source} from data.calibration (no data.parity or data.evaluation)",
                        None, subset.batch_axes, subset.whole_batches)
    return synthetic_set(loaded, model, data.parity_samples)


def synthetic_set(loaded: LoadedSpec, model: ModelInfo, samples: int) -> InputSet:
    """Seeded inputs within each input's declared range (edgecheck.synthetic), laid out as the spec says."""
    layout = layout_of(loaded, model)
    feeds = synthetic_feeds(loaded, model, samples, layout.values,
                            {t.name: layout.axis(t.name) for t in model.inputs})
    return InputSet(feeds, f"synthetic ({samples} inputs, seed {loaded.spec.data.seed})", None,
                    dict(layout.batch_axes), True, synthetic=True)


def calibration_feeds(model: ModelInfo, path: Path, limit: int | None = None) -> InputSet:
    """Representative inputs (no labels) for INT8 calibration, in file order, in batches the model
    takes. A file `prepare_calibration` wrote carries the spec's batch axes and fixed values."""
    arrays = dict(load_npz(path, WORKER_MAX_MB))
    layout = layout_of(None, model)
    if LAYOUT_MEMBER in arrays:
        axes = json.loads(str(arrays.pop(LAYOUT_MEMBER)))["batch_axes"]
        layout = Layout({t.name: axes.get(t.name, layout.axis(t.name)) for t in model.inputs})
    feeds, cap, count = prepare(model, layout, arrays, path, limit)
    return InputSet(feeds, _source(path, cap, count, model, layout, arrays), None, dict(layout.batch_axes),
                    _batch_size(model, layout) is not None)


def prepare_calibration(loaded: LoadedSpec, model: ModelInfo, folder: Path) -> Path | None:
    """The calibration file recipes read: the spec's own where it feeds with the defaults, else a
    copy in `folder` (same name) holding the spec's fixed values and batch axes, which recipes read
    through `calibration_feeds` without the spec. Bytes depend on content only (cache keys hold)."""
    path = loaded.spec.data.calibration
    if path is None:
        return None
    layout = layout_of(loaded, model)
    if not layout.explicit:
        return path
    arrays = load_npz(path, loaded.spec.data.max_mb)
    columns = columns_for(model, arrays, path, layout)
    stat = path.stat()
    digest = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{sorted(layout.batch_axes.items(), key=str)}"
                            .encode())
    for name in sorted(layout.values):
        digest.update(f"{name}|{layout.values[name].dtype.str}|{layout.values[name].shape}|".encode())
        digest.update(layout.values[name].tobytes())
    prepared = folder / digest.hexdigest()[:16] / path.name  # one per file and layout: specs never share one
    if not prepared.is_file():
        prepared.parent.mkdir(parents=True, exist_ok=True)
        write_npz(prepared, {**columns, **layout.values}, {"batch_axes": dict(layout.batch_axes)})
    return prepared
