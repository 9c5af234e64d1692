"""The spec's data checked against the model when the spec loads, so bad data is one spec error at
collection (file, line, cause) instead of the same failure in every check at run time.

Each data file (evaluation, calibration, parity) is read once (sizes checked from its headers
first) and laid out exactly as the run will lay it out: array names, shapes, types, sample counts,
finiteness; labels as edgecheck.labels checks them; the inputs' batch axes and fixed values;
calibration present where a recipe needs it.
"""

from __future__ import annotations

import math

import numpy as np

from edgecheck.data import _batch_size, evaluation_set, fixed_value, layout_of, load_npz, prepare, unlabelled_set
from edgecheck.errors import DataError
from edgecheck.labels import check_topk_classes, output_classes
from edgecheck.model import ModelInfo
from edgecheck.spec import LoadedSpec
from edgecheck.spec.schema import topk_of


def validate_layout(loaded: LoadedSpec, model: ModelInfo) -> None:
    """The spec's batch axes, fixed values and ranges fit the model's inputs."""
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

