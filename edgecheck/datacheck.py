"""The spec's data checked against the model when the spec loads, so bad data is one spec error at
collection (file, line, cause) instead of the same failure in every check at run time.

Each data file (evaluation, calibration, parity) is read once (sizes checked from its headers
first) and laid out exactly as the run will lay it out: array names, shapes, types, sample counts,
finiteness; labels present, integral for top-k metrics and inside the output's classes; a top-k
metric's k below the output's classes (else every model scores 100 %); the inputs'
batch axes and fixed values; calibration present where a recipe needs it.
"""

from __future__ import annotations

import math

import numpy as np

from edgecheck.errors import DataError
from edgecheck.model import ModelInfo
from edgecheck.spec import LoadedSpec
from edgecheck.spec.schema import EvaluationData, topk_of


def _first(mask: np.ndarray) -> int:
    return int(np.argwhere(mask)[0][0])


def output_classes(model: ModelInfo, evaluation: EvaluationData) -> tuple[str, int | None]:
    """The output a top-k metric reads and its number of classes, where the model fixes it."""
    name = evaluation.output or (model.outputs[0].name if model.outputs else "")
    tensor = model.output(name)
    if tensor is None or len(tensor.shape) != 2:
        return name, None
    classes = tensor.shape[1]
    return name, classes if isinstance(classes, int) and classes >= 1 else None


def check_labels(labels: np.ndarray, evaluation: EvaluationData, model: ModelInfo, path) -> np.ndarray:
    """The labels as the metric reads them; `DataError` for labels that would score garbage (NaN,
    fractions, negative or out-of-range classes), counted and placed."""
    where = f"{path}: labels array {evaluation.labels!r}"
    if labels.ndim == 0:
        raise DataError(f"{where} is a single value (shape []); give one label per sample along the first axis")
    if len(labels) == 0:
        raise DataError(f"{where} holds no samples")
    k = topk_of(evaluation.metric)
    floating = np.issubdtype(labels.dtype, np.floating)
    if floating and evaluation.metric == "mse" or (floating and k is not None):
        bad = ~np.isfinite(labels)
        if bad.any():
            raise DataError(f"{where} holds {int(np.count_nonzero(bad))} NaN/Inf values (first at sample "
                            f"{_first(bad)}): labels must be finite")
    if k is None:
        return labels
    metric = evaluation.metric
    if labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1):
        raise DataError(f"{where} has shape {list(labels.shape)}; {metric} needs one class index per sample "
                        "([samples] or [samples, 1])")
    if floating:
        fraction = labels != np.round(labels)
        if fraction.any():
            index = _first(fraction)
            raise DataError(f"{where} holds {int(np.count_nonzero(fraction))} values that are not whole numbers "
                            f"(first at sample {index}: {float(labels.reshape(-1)[index]):g}); {metric} needs class indices")
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where} is {labels.dtype.name}; {metric} needs integer class indices")
    flat = labels.reshape(-1)
    negative = flat < 0
    if negative.any():
        index = _first(negative)
        raise DataError(f"{where} holds {int(np.count_nonzero(negative))} negative labels (first at sample {index}: "
                        f"{int(flat[index])}); class indices start at 0")
    output, classes = output_classes(model, evaluation)
    if classes is not None:
        check_label_range(flat, classes, output, where)
    return labels


def check_label_range(labels: np.ndarray, classes: int, output: str, where: str) -> None:
    """Labels must name one of the output's classes: 0 .. classes - 1."""
    outside = labels.reshape(-1) >= classes
    if outside.any():
        index = _first(outside)
        raise DataError(f"{where} holds {int(np.count_nonzero(outside))} labels outside the {classes} classes of "
                        f"output {output!r} (0..{classes - 1}); the first at sample {index} is "
                        f"{int(labels.reshape(-1)[index])}: every sample would score 0 for any model")


def check_topk_classes(k: int, classes: int, metric: str, output: str) -> None:
    """A top-k metric whose k reaches the output's classes scores 100 % for any model: refused."""
    if k < classes:
        return
    if classes > 1:
        raise DataError(f"metric {metric!r} counts a sample right when its label is among the {k} highest scores, "
                        f"and output {output!r} has {classes} classes: every model scores 100 %; use a k below "
                        f"{classes} (top1 .. topk:{classes - 1})")
    raise DataError(f"metric {metric!r} reads output {output!r}, which has {classes} class: every model scores "
                    "100 %; a top-k metric needs an output of class scores [samples, classes]")


def validate_layout(loaded: LoadedSpec, model: ModelInfo) -> None:
    """The spec's batch axes, fixed values and ranges fit the model's inputs."""
    from edgecheck.data import _batch_size, fixed_value, layout_of

    for tensor in model.inputs:
        declared = loaded.spec.inputs.get(tensor.name)
        if declared is None:
            continue
        if declared.fixed is not None and declared.fixed != "data":
            try:
                fixed_value(tensor, declared.fixed)
            except DataError as exc:
                raise loaded.error(("inputs", tensor.name, "fixed"), str(exc)) from None
        elif declared.fixed is None and "batch_axis" in declared.model_fields_set and declared.batch_axis >= max(
                len(tensor.shape), 1):
            raise loaded.error(("inputs", tensor.name, "batch_axis"), f"model input {tensor.name!r} "
                               f"{tensor.shape_text()} has rank {len(tensor.shape)}: no axis {declared.batch_axis}")
        problem = range_problem(tensor.dtype, declared.range)
        if problem and declared.fixed is None:
            raise loaded.error(("inputs", tensor.name, "range"), f"model input {tensor.name!r} is {tensor.dtype}: {problem}")
    try:
        _batch_size(model, layout_of(loaded, model))
    except DataError as exc:
        raise loaded.error(("inputs",), str(exc)) from None


def range_problem(dtype: str, bounds: tuple[float, float]) -> str | None:
    """Why synthetic integers cannot come from `bounds` ('low >= high' otherwise, deep in numpy)."""
    try:
        kind = np.dtype(dtype)
    except TypeError:
        return None
    if not np.issubdtype(kind, np.integer):
        return None
    low, high = math.ceil(bounds[0]), math.floor(bounds[1])
    if low > high:
        return f"its range {list(bounds)} holds no integer; give a range with a whole number in it, e.g. [0, 1]"
    info = np.iinfo(kind)
    if low < info.min or high > info.max:
        return f"its range {list(bounds)} does not fit {dtype} ({info.min}..{info.max})"
    return None


def validate_data(loaded: LoadedSpec, model: ModelInfo, needs_calibration: list[tuple[int, str]]) -> None:
    """Read and lay out every data file as the run will; the first problem is a `SpecError` at the
    file's line. `needs_calibration` lists (compress index, recipe) of steps that calibrate."""
    from edgecheck.data import evaluation_set, layout_of, load_npz, prepare, unlabelled_set

    data = loaded.spec.data
    if data.calibration is None and needs_calibration:
        index, recipe = needs_calibration[0]
        raise loaded.error(("compress", index), f"recipe {recipe!r} calibrates on data: set data.calibration in the "
                           "spec (an .npz of representative inputs, an array per model input)")
    evaluation = data.evaluation
    if evaluation is not None and (k := topk_of(evaluation.metric)) is not None:
        output, classes = output_classes(model, evaluation)
        if classes is not None:
            try:
                check_topk_classes(k, classes, evaluation.metric, output)
            except DataError as exc:
                raise loaded.error(("data", "evaluation", "metric"), str(exc)) from None
    checks = []
    if data.evaluation is not None:
        checks.append((("data", "evaluation", "path"), lambda: evaluation_set(loaded, model)))
    if data.calibration is not None:
        path = data.calibration
        checks.append((("data", "calibration"), lambda: prepare(model, layout_of(loaded, model),
                                                                load_npz(path, data.max_mb), path)))
    if data.parity is not None:
        checks.append((("data", "parity"), lambda: unlabelled_set(loaded, model, data.parity, None)))
    for loc, check in checks:
        try:
            check()
        except DataError as exc:
            raise loaded.error(loc, str(exc)) from None

