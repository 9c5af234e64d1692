"""Labels checked against the metric and the model's output: present, finite, integral for a top-k
metric and inside the output's classes, and a top-k metric's k below the output's classes (else
every model scores 100 %). Read by the data loading and by the accuracy check alike."""

from __future__ import annotations

import numpy as np

from edgecheck.errors import DataError
from edgecheck.model import ModelInfo
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
