"""Numerical parity of an artifact's outputs with the reference, per output.

Every statistic is computed whatever the budget names, so a report can show what the budget
missed: a cosine of 1.0 says nothing about scale (outputs 10x too large have cosine 1.0), which is
why rel_l2, SNR and absolute errors sit beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.parity_stats import FiniteScan, Sums, constant_along_samples
from edgecheck.checks.result import CheckResult, Measurement, fmt
from edgecheck.checks.suggest import PARITY_LOWER
from edgecheck.spec.schema import ParityBudget, ParityOverride

REL_FLOOR = 1e-6  # relative error divides by max(|ref|, REL_FLOOR * max|ref|), so zeros do not explode it
NEAR_ZERO = 1e-6  # a reference no larger than this on synthetic inputs: noise in, nothing out


@dataclass(frozen=True)
class OutputParity:
    """How one output of the candidate differs from the reference."""

    name: str
    elements: int
    max_abs: float
    mean_abs: float
    max_rel: float
    rel_l2: float
    cosine: float
    snr_db: float
    nonfinite: int  # elements finite in the reference but not in the candidate
    top1_agreement: float | None = None
    topk_agreement: float | None = None
    k: int | None = None
    problem: str | None = None
    reference_nonfinite: int = 0  # NaN/Inf in the reference itself: nothing can be judged on these inputs
    reference_max_abs: float = math.nan  # the reference's largest finite magnitude
    reference_constant: bool = False  # every slice along the samples' axis equal: no input changed it


def _is_scores(array: np.ndarray) -> bool:
    """Class scores: a float batch of rows with at least two classes."""
    return array.ndim == 2 and array.shape[1] >= 2 and np.issubdtype(array.dtype, np.floating)


def _topk_overlap(reference: np.ndarray, candidate: np.ndarray, k: int) -> float:
    k = min(k, reference.shape[1])
    ref_top = np.argsort(-reference, axis=1, kind="stable")[:, :k]
    out_top = np.argsort(-candidate, axis=1, kind="stable")[:, :k]
    overlap = [len(set(r) & set(o)) / k for r, o in zip(ref_top.tolist(), out_top.tolist())]
    return float(np.mean(overlap)) if overlap else 1.0


def _unmeasured(name: str, elements: int, problem: str) -> OutputParity:
    """An output that could not be compared: every statistic NaN (never passes), the reason kept."""
    nan = math.nan
    return OutputParity(name, elements, nan, nan, nan, nan, nan, nan, 0, problem=problem)


def _first_at(flat: int, shape: tuple[int, ...]) -> str:
    """Where flat index `flat` of an output of `shape` is: 'sample 3, index [3, 7]' (outputs are samples along
    axis 0)."""
    index = [int(i) for i in np.unravel_index(flat, shape)] if shape else []
    return f"sample {index[0]}, index {index}" if index else "the only value"


def compare_output(name: str, reference: np.ndarray, candidate: np.ndarray, k: int | None = None) -> OutputParity:
    """All parity statistics of one output (computed in float64, blockwise: edgecheck.checks.parity_stats).
    NaN or Inf in either output makes every statistic NaN (never a pass) and is a problem that counts and
    places them: no value is ever left out of a statistic."""
    if reference.shape != candidate.shape:
        return _unmeasured(name, reference.size, f"output {name!r} has shape {list(candidate.shape)}, "
                                                 f"the reference {list(reference.shape)}")
    with np.errstate(all="ignore"):
        scan = FiniteScan.of(reference, candidate)
    broken, nonfinite = scan.reference_bad, scan.candidate_bad
    if reference.dtype.kind == "f":
        ref_max = scan.reference_max if reference.size > broken else math.nan
    else:
        ref_max = math.inf  # class indices, masks: zero is an answer there
    nan = math.nan
    problems = []
    if broken:
        problems.append(f"the reference (the original model) gives {broken} NaN/Inf values of {reference.size} in "
                        f"output {name!r}, first at {_first_at(scan.first_reference_bad or 0, reference.shape)}: "
                        "parity cannot be judged on these inputs; fix the inputs or the model")
    if nonfinite:
        problems.append(f"output {name!r} has {nonfinite} NaN/Inf values where the reference is finite, first at "
                        f"{_first_at(scan.first_candidate_bad or 0, reference.shape)}")
    if problems:  # no statistic means anything with NaN/Inf in either output
        max_abs = mean_abs = max_rel = rel_l2 = cosine = snr_db = nan
    else:
        with np.errstate(all="ignore"):
            sums = Sums.of(reference, candidate, scan, REL_FLOOR)
        max_abs, max_rel = sums.max_abs, sums.max_rel
        mean_abs = sums.mean_abs(reference.size)
        cosine, rel_l2, snr_db = sums.cosine(), sums.rel_l2(), sums.snr_db()
    top1 = topk = None
    if _is_scores(reference):
        if problems:
            top1, topk = nan, (nan if k else None)
        else:
            top1 = float(np.mean(np.argmax(reference, axis=1) == np.argmax(candidate, axis=1))) if len(reference) else 1.0
            if k:
                topk = _topk_overlap(reference, candidate, k)
    # outputs are joined over samples along axis 0: all slices equal means every sample gave the same output
    constant = not problems and constant_along_samples(reference)
    return OutputParity(name, reference.size, max_abs, mean_abs, max_rel, rel_l2,
                        cosine, snr_db, nonfinite, top1, topk, k if topk is not None else None,
                        problem="; ".join(problems) or None, reference_nonfinite=broken, reference_max_abs=ref_max,
                        reference_constant=constant)


def compare_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                    k: int | None = None) -> list[OutputParity]:
    """Parity of every reference output; an output the candidate lacks is a problem, not a crash."""
    results = []
    for name, ref in reference.items():
        if name not in candidate:
            results.append(_unmeasured(name, ref.size, f"the artifact has no output {name!r} "
                                                       f"(outputs: {', '.join(candidate) or 'none'})"))
        else:
            results.append(compare_output(name, ref, candidate[name], k))
    return results


# (statistic, budget field, bound, unit)
_BOUNDS = (
    ("max_abs", "atol", "max", ""),
    ("max_rel", "rtol", "max", ""),
    ("rel_l2", "rel_l2", "max", ""),
    ("cosine", "cosine", "min", ""),
    ("snr_db", "snr_db", "min", "dB"),
    ("top1_agreement", "top1_agreement", "min", ""),
)


def judge_parity(outputs: list[OutputParity], budget: ParityBudget, synthetic: bool = False, samples: int = 0,
                 inputs_hint: str = "") -> CheckResult:
    """Measurements for every output and statistic; those the budget names are judged. The verdict
    is inconclusive where the statistics say nothing of the artifact: on synthetic inputs an output
    whose reference is near zero (they compare noise), and on any inputs a reference output that is
    the same for all `samples` (the inputs do not exercise the model). `inputs_hint` names the spec
    fields that decide inputs which are not real data."""
    result = CheckResult("parity")
    if not outputs or all(p.elements == 0 for p in outputs):
        result.problems.append("nothing was compared: the reference has no output values")
    for parity in outputs:
        if parity.problem:
            result.problems.append(parity.problem)
        prefix = f"parity.{parity.name}"
        for stat, field, bound, unit in _BOUNDS:
            value = getattr(parity, stat)
            if value is None:
                if getattr(budget, field) is not None and not parity.problem:
                    result.problems.append(f"{field} needs class scores ([batch, classes]); output "
                                           f"{parity.name!r} is not")
                continue
            limit = getattr(budget, field)
            result.measurements.append(Measurement(
                f"{prefix}.{stat}", value, unit, limit, bound if limit is not None else None,
                budget_text=f"{fmt(limit)}{' ' + unit if unit else ''} ({field})" if limit is not None else ""))
        result.measurements.append(Measurement(f"{prefix}.mean_abs", parity.mean_abs))
        if parity.nonfinite or parity.reference_nonfinite:
            result.measurements.append(Measurement(f"{prefix}.nonfinite", parity.nonfinite))
            result.measurements.append(Measurement(f"{prefix}.reference_nonfinite", parity.reference_nonfinite))
        if synthetic and not parity.problem and parity.elements and parity.reference_max_abs <= NEAR_ZERO:
            doubt = (f"on synthetic inputs the reference's output {parity.name!r} is at most "
                     f"{fmt(parity.reference_max_abs)} in magnitude: its parity statistics compare noise and are not "
                     "meaningful; give real inputs in data.parity (or data.evaluation, data.calibration)")
            result.doubts.append(doubt)
            result.notes.append(doubt)
        elif samples > 1 and not parity.problem and parity.reference_constant:
            # an anchors or image-size output is constant by design: only all outputs constant is a doubt
            if all(p.reference_constant for p in outputs if not p.problem):
                doubt = (f"the reference's output {parity.name!r} is the same for all {samples} parity samples: the "
                         "inputs do not exercise the model; give real inputs in data.parity"
                         + (f" or fix {inputs_hint}" if inputs_hint else ""))
                result.doubts.append(doubt)
                result.notes.append(doubt)
            else:
                result.notes.append(f"the reference's output {parity.name!r} is the same for all {samples} parity "
                                    "samples (the model's other outputs vary): its statistics say little")
        if budget.topk_agreement is not None:
            if parity.topk_agreement is None:
                if not parity.problem:
                    result.problems.append(f"topk_agreement needs class scores ([batch, classes]); output "
                                           f"{parity.name!r} is not")
            else:
                result.measurements.append(Measurement(
                    f"{prefix}.top{parity.k}_overlap", parity.topk_agreement, "", budget.topk_agreement.min, "min",
                    budget_text=f"{fmt(budget.topk_agreement.min)} (topk_agreement, k={parity.k})"))
    scale_blind = budget.cosine is not None and all(
        getattr(budget, f) is None for f in ("atol", "rtol", "rel_l2", "snr_db"))
    if scale_blind and outputs:
        judged = [p for p in outputs if not p.problem and not math.isnan(p.rel_l2)]
        if judged:
            worst = max(judged, key=lambda p: p.rel_l2)
            where = f" (output {worst.name!r}, the largest)" if len(judged) > 1 else ""
            result.notes.append(f"the budget bounds only cosine, which ignores scale; rel_l2 here is "
                                f"{fmt(worst.rel_l2)}{where} (add atol or rel_l2 to catch scale errors)")
    return result


def identical_bits_note(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], samples: int,
                        backend: str, arithmetic: str = "") -> str | None:
    """A note for an artifact its recipe changed whose outputs equal the reference's bit for bit:
    the runtime here did the reference's arithmetic, so parity says nothing of the reduced precision
    a device would compute in. A note only: the outputs did agree. `arithmetic`: how the backend computes a
    reduced-precision graph, where it says (Backend.arithmetic_note)."""
    if not reference or set(reference) != set(candidate):
        return None
    for name, ref in reference.items():
        out = candidate[name]
        if ref.dtype != out.dtype or ref.shape != out.shape or ref.tobytes() != out.tobytes():
            return None
    how = f" ({arithmetic})" if arithmetic else ""
    return (f"the artifact's outputs are identical bit for bit to the reference's on all {samples} parity samples, "
            f"though its recipe changed the model: {backend} here computed it in the reference's arithmetic{how}, "
            "so this parity exercised none of the reduced precision; a device that computes in float16 (or "
            "int8) can differ")


class ParityCheck(Check):
    """The artifact's outputs against the reference's, output by output, on the parity inputs."""

    name = "parity"
    order = 20
    uses_outputs = True
    device_dependent = True
    budgets = {"parity": BudgetField(ParityBudget | None, Field(None, description=(
        "Numerical agreement with the reference, per output: {cosine: 0.999, rel_l2: 0.01}."),
        examples=[{"cosine": 0.999, "rel_l2": 0.01}, {"snr_db": 30, "top1_agreement": 0.98}]),
        override=ParityOverride | None, bounds=tuple(ParityBudget.model_fields))}

    suggest_notes = {"parity": "parity: per output, the loosest; never tighter than the noise floor (recipe none on "
                               "the same backend against the 1-thread reference, on backends other than the "
                               "reference's own): atol, rel_l2 = max(value, floor)*"
                               "(1+margin) rounded up to 2 significant digits; cosine = 1-(1-min(value, floor))*"
                               "(1+margin), at least 1e-6 below 1; snr_db = min(value, floor)-10*log10(1+margin), "
                               "rounded down to 0.1 dB; top1_agreement = min(value, floor)-1/n samples"}
    suggest_lower = PARITY_LOWER
    suggest_floor = True

    def suggest(self, result: Mapping[str, Any], context: Any) -> dict[str, Any]:
        from edgecheck.checks.suggest import suggest_parity

        return suggest_parity(result, context)

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        from edgecheck.checks.accuracy import outputs_origin
        from edgecheck.data import input_hint

        loaded = planned.spec
        made, reference = context.artifact_with_reference(loaded, planned.recipe, "parity")
        artifact = made.artifact
        candidate, cached = context.outputs(loaded, artifact.path, planned.backend, planned.threads, "parity",
                                          planned.target)
        budget = planned.budgets.parity
        k = budget.topk_agreement.k if budget and budget.topk_agreement else None
        inputs = context.inputs(loaded, "parity")
        model = context.model_info(loaded.spec.model.path)
        hint = input_hint(loaded, model, inputs)
        result = judge_parity(compare_outputs(reference, candidate, k), budget,
                              synthetic=inputs.synthetic, samples=inputs.sample_count, inputs_hint=hint)
        result.facts["inputs"] = inputs.source
        result.facts["inputs.samples"] = str(inputs.sample_count)
        if context.model_info(artifact.path).sha256 != model.sha256:
            same = identical_bits_note(reference, candidate, inputs.sample_count, planned.backend,
                                       context.backend(planned.backend, planned.target).arithmetic_note())
            if same is not None:
                result.notes.append(same)
        result.facts["outputs"] = outputs_origin(cached)
        return result
