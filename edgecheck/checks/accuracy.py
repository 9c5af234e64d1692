"""Task metric on the labelled set, and its drop against the original model.

A drop is in points of the metric ("accuracy_drop: 1.0") or relative to the original
("accuracy_drop: '1%'"): both are always measured and recorded, and the budget says which one
is judged, so the two are never confused.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.result import CheckResult, Measurement, fmt
from edgecheck.labels import check_label_range, check_topk_classes
from edgecheck.errors import DataError
from edgecheck.spec.schema import AccuracyDropField, EvaluationData, is_percent_metric, topk_of
from edgecheck.spec.words import Points

if TYPE_CHECKING:
    from edgecheck.spec import Budgets

Metric = Callable[[Mapping[str, np.ndarray], np.ndarray], float]


def _scores(outputs: Mapping[str, np.ndarray], name: str, labels: np.ndarray) -> np.ndarray:
    if name not in outputs:
        raise DataError(f"the artifact has no output {name!r} (outputs: {', '.join(outputs) or 'none'})")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"top-k metrics need labels as one integer class index per sample; got "
                        f"{labels.dtype.name} labels of shape {list(labels.shape)}")
    scores = outputs[name]
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise DataError(f"metric needs output {name!r} as [samples, classes] matching {labels.shape[0]} labels; "
                        f"it has shape {list(scores.shape)}")
    check_label_range(labels, scores.shape[1], name, "the evaluation data's labels")
    return scores


def nonfinite_problems(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                       output: str) -> list[str]:
    """NaN/Inf in the output the metric reads, counted and placed: in the reference nothing can be
    judged; in the artifact where the reference is finite, it is a breach. Never averaged away."""
    problems = []
    ref, out = reference.get(output), candidate.get(output)
    ref_bad = ~np.isfinite(ref) if ref is not None and ref.dtype.kind in "fc" else None
    if ref_bad is not None and ref_bad.any():
        problems.append(f"the original model gives {int(np.count_nonzero(ref_bad))} NaN/Inf values of {ref.size} in "
                        f"output {output!r} on the evaluation data, first at sample {_first_sample(ref_bad)}: its "
                        "metric cannot be judged; fix the inputs or the model")
    if out is not None and out.dtype.kind in "fc":
        out_bad = ~np.isfinite(out)
        if ref_bad is not None and ref_bad.shape == out_bad.shape:
            out_bad &= ~ref_bad
        if out_bad.any():
            problems.append(f"the artifact gives {int(np.count_nonzero(out_bad))} NaN/Inf values in output "
                            f"{output!r} where the reference is finite, first at sample {_first_sample(out_bad)}")
    return problems


def _first_sample(mask: np.ndarray) -> int:
    return int(np.argwhere(mask)[0][0]) if mask.ndim else 0


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percent of samples whose label is among the k highest scores."""
    labels = labels.reshape(-1).astype(np.int64)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)) * 100) if len(labels) else math.nan


def metric_function(evaluation: EvaluationData, output: str) -> tuple[Metric, str]:
    """The callable that scores outputs against labels, and the unit of its value."""
    metric = evaluation.metric
    if metric == "mse":
        def mse(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
            if output not in outputs:
                raise DataError(f"the artifact has no output {output!r} (outputs: {', '.join(outputs) or 'none'})")
            values = outputs[output].astype(np.float64)
            if values.shape != labels.shape and values.size != labels.size:
                raise DataError(f"mse needs output {output!r} {list(values.shape)} and labels "
                                f"{list(labels.shape)} of the same size")
            return float(np.mean((values.ravel() - labels.astype(np.float64).ravel()) ** 2))
        return mse, ""
    if (k := topk_of(metric)) is not None:
        def topk(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
            scores = _scores(outputs, output, labels)
            check_topk_classes(k, scores.shape[1], metric, output)  # classes known only now
            return topk_accuracy(scores, labels, k)
        return topk, "%"
    module_name, _, function_name = metric.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # the user's module: any error at import is theirs to see
        raise DataError(f"cannot import metric {metric!r}: {exc}") from None

    def custom(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
        try:
            return float(function(dict(outputs), labels))
        except Exception as exc:  # the user's code: say whose it is, keep its message
            raise DataError(f"custom metric {metric!r} raised {type(exc).__name__}: {exc}") from exc

    return custom, ""


def chance_score(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percent a model scores by chance here: k / classes, or, when more, what these very predictions
    score against the same labels in random order (imbalanced classes make that higher)."""
    labels = labels.reshape(-1).astype(np.int64)
    samples, classes = scores.shape
    if not samples:
        return math.nan
    label_share = np.bincount(labels, minlength=classes)[:classes] / samples
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    shuffled = float(np.mean(label_share[top].sum(axis=1)))  # expected over every order of the labels
    return max(min(k, classes) / classes, shuffled) * 100


def chance_doubt(original: float, scores: np.ndarray, labels: np.ndarray, k: int) -> str | None:
    """Why an accuracy drop cannot be judged: the original model does not score clearly above chance
    (more than two binomial standard deviations) on the evaluation set, so its labels may not belong
    to its inputs (shuffled, misaligned) and any drop measured against them means nothing."""
    samples, classes = scores.shape
    chance = chance_score(scores, labels, k)
    if not samples or math.isnan(original) or math.isnan(chance):
        return None
    p = chance / 100
    clearly = (p + 2 * math.sqrt(p * (1 - p) / samples)) * 100
    if original > clearly:
        return None
    balanced = min(k, classes) / classes * 100
    why = (f"{_percent(chance)} %" if chance <= balanced else
           f"{_percent(chance)} %, what its predictions score against these labels in random order; "
           f"{_percent(balanced)} % for balanced classes")
    return (f"the original model scores {_percent(original)} % top-{k} on {samples} samples of {classes} classes, "
            f"no better than chance ({why}; clearly better is above {_percent(clearly)} %): the labels may not "
            "belong to the inputs; cannot judge an accuracy drop")


def _percent(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def judge_accuracy(original: float, candidate: float, unit: str, higher_is_better: bool, budgets: Budgets) -> CheckResult:
    """Measure the metric and both kinds of drop; judge the ones the budgets name."""
    result = CheckResult("accuracy")
    drop = (original - candidate) if higher_is_better else (candidate - original)
    if original or math.isnan(drop):
        relative = drop / abs(original) * 100 if original else math.nan  # NaN: never a pass
    else:  # nothing to be relative to: any loss is infinite, any gain is no loss
        relative = math.inf if drop > 0 else (0.0 if drop == 0 else -math.inf)
    budget = budgets.accuracy_drop
    absolute, relative_budget = (budget, None) if budget and not budget.relative else (None, budget)
    cannot_judge = ""
    if relative_budget is not None and not original and drop <= 0:
        # a share of nothing: no change and any gain are not a pass (a loss is infinite, a breach)
        cannot_judge = (f"the original model scores {fmt(original)}{' ' + unit if unit else ''}, and a drop relative "
                        f"to 0 means nothing (the budget {relative_budget} is a share of the original's score); give "
                        "the budget in points of the metric (accuracy_drop: 1.0)")
        result.notes.append(f"cannot judge accuracy_drop_relative: {cannot_judge}")
    # the drop comes first: it is what a summary line shows when nothing is breached
    result.measurements.append(Measurement(
        "accuracy_drop", drop, "pts", absolute.value if absolute else None, "max" if absolute else None,
        budget_text=str(absolute) if absolute else ""))
    result.measurements.append(Measurement(
        "accuracy_drop_relative", relative, "%", relative_budget.value if relative_budget else None,
        "max" if relative_budget else None, budget_text=str(relative_budget) if relative_budget else "",
        cannot_judge=cannot_judge))
    bound = budgets.accuracy_min if higher_is_better else budgets.accuracy_max
    result.measurements.append(Measurement("accuracy", candidate, unit, bound,
                                           ("min" if higher_is_better else "max") if bound is not None else None))
    result.measurements.append(Measurement("accuracy.original", original, unit))
    if not higher_is_better:
        result.notes.append("lower is better for this metric: a drop is an increase of the metric")
    return result


def outputs_origin(cached: bool) -> str:
    """Where a check's outputs came from, for its facts."""
    return ("from the cache: computed before this check asked, by an earlier run or by another process of this one "
            "(an xdist worker), for the same artifact bytes, runtime version, threads and inputs"
            if cached else "computed in this session")


class AccuracyCheck(Check):
    """The task metric of the artifact on the labelled set, and its drop against the original model."""

    name = "accuracy"
    order = 10
    uses_outputs = True
    device_dependent = True
    budgets = {
        "accuracy_drop": BudgetField(AccuracyDropField | None, Field(
            None, description="Max drop of the metric against the original: 1.0 = points, '1%' = relative.",
            examples=[1.0, "1%"])),
        "accuracy_min": BudgetField(Points | None, Field(
            None, description="The metric must be at least this (higher-is-better).", examples=[95])),
        "accuracy_max": BudgetField(Points | None, Field(
            None, description="The metric must be at most this (lower-is-better).", examples=[0.05])),
    }

    suggest_notes = {"accuracy_drop": "accuracy_drop: max(measured drop, 0) + 2 standard errors of the accuracy "
                                      "(100*sqrt(p(1-p)/n) points, at least 100/n), rounded up to 0.01"}

    def suggest(self, result: Mapping[str, Any], context: Any) -> dict[str, Any]:
        from edgecheck.checks.suggest import suggest_accuracy

        return suggest_accuracy(result, context)

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        loaded = planned.spec
        # the artifact's error first (a recipe that fails says so); the reference computed meanwhile where it can be
        made, reference = context.artifact_with_reference(loaded, planned.recipe, "evaluation")
        artifact = made.artifact
        evaluation = loaded.spec.data.evaluation
        assert evaluation is not None  # the schema refuses accuracy budgets without evaluation data
        model = context.model_info(loaded.spec.model.path)
        output = evaluation.output or model.outputs[0].name
        metric, unit = metric_function(evaluation, output)
        inputs = context.inputs(loaded, "evaluation")
        labels = inputs.labels
        assert labels is not None
        original = metric(reference, labels)
        outputs, cached = context.outputs(loaded, artifact.path, planned.backend, planned.threads, "evaluation",
                                          planned.target)
        candidate = metric(outputs, labels)
        result = judge_accuracy(original, candidate, unit, evaluation.is_higher_better, planned.budgets)
        result.problems.extend(nonfinite_problems(reference, outputs, output))
        k = topk_of(evaluation.metric)
        doubt = chance_doubt(original, reference[output], labels, k) if k is not None else None
        if doubt is not None:  # labels that do not belong to the inputs: no drop means anything
            result.doubts.append(doubt)
            result.notes.append(doubt)
        result.facts["metric"] = evaluation.metric
        result.facts["inputs"] = inputs.source
        result.facts["inputs.samples"] = str(inputs.sample_count)
        result.facts["outputs"] = outputs_origin(cached)
        return result

    def compare_with_baseline(self, result: CheckResult, before: Mapping[str, float] | None, name: str,
                              planned: Any, comparable: bool) -> None:
        from edgecheck.checks.regression import accuracy_regression, no_figures

        if before is None:
            no_figures(result, name)
            return
        evaluation = planned.spec.spec.data.evaluation
        budget = planned.budgets.regression
        accuracy_regression(result, before, name, budget.accuracy if budget else None,
                            evaluation.is_higher_better if evaluation is not None else True)

    def spec_problems(self, spec: Any, where: tuple[str | int, ...], budgets: Any) -> list[tuple[tuple[str | int, ...], str]]:
        """Accuracy budgets need labelled data, and a bound that fits the metric's unit and direction."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        evaluation = spec.data.evaluation
        for name in ("accuracy_drop", "accuracy_min", "accuracy_max"):
            value = getattr(budgets, name)
            if value is None:
                continue
            loc = (*where, name)
            if evaluation is None:
                problems.append((loc, "needs data.evaluation (a labelled .npz) to measure accuracy"))
            elif name != "accuracy_drop" and is_percent_metric(evaluation.metric) and not 1 < value <= 100:
                hint = f" (did you mean {value * 100:g}?)" if 0 < value <= 1 else ""
                problems.append((loc, f"{evaluation.metric} is in percent, 0-100: {value:g} cannot be meant{hint}"))
            elif name != "accuracy_drop" and (name == "accuracy_min") != evaluation.is_higher_better:
                better = "higher" if evaluation.is_higher_better else "lower"
                fix = "accuracy_min" if evaluation.is_higher_better else "accuracy_max"
                problems.append((loc, f"does not fit metric {evaluation.metric!r} ({better} is better): use {fix}"))
        return problems
