"""The spec file's schema: what a team promises a model achieves on each target device.

Pydantic gives the validation and the JSON Schema (`edgecheck schema`). Paths are resolved
against the spec's folder and checked to exist and stay inside the project when the loader passes
a `SpecContext` as validation context; built from Python without one, paths are taken as given.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ValidationError,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from edgecheck.spec.performance import RegressionBudget, RegressionOverride
from edgecheck.spec.budgets import (AccuracyDrop, AccuracyDropField, ParityBudget, ParityOverride,  # noqa: F401
                                     TopKAgreement)  # (re-exported: the spec's models in one place)
from edgecheck.spec.kinds import BudgetField, check_kinds
from edgecheck.spec.ops import OpsBudget  # noqa: F401  (re-exported for the ops check and tests)
from edgecheck.spec.recipes import CompressEntryField
from edgecheck.strict import StrictModel

SPEC_VERSION = 1
CANDIDATE = "candidate"  # the name of the candidate model's own items, and the chain step that starts from it
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
BUILTIN_METRICS = ("top1", "mse")
_TOPK = re.compile(r"^top(?:k:)?(\d+)$")
_CUSTOM_METRIC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = r"^[a-z0-9][a-z0-9._-]*$"


@dataclass(frozen=True)
class SpecContext:
    """Where relative paths start (the spec's folder) and the folder they must not leave."""

    base_dir: Path
    project_root: Path


def _resolve(value: Path, info: ValidationInfo) -> Path:
    context = info.context
    if not isinstance(context, SpecContext):
        return value
    try:
        resolved = (context.base_dir / value).resolve()
        root = context.project_root.resolve()
        exists = resolved.is_file()
    except (OSError, RuntimeError) as exc:  # symlink loops, names too long
        raise ValueError(f"cannot resolve path {str(value)!r}: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ValueError(f"path {str(value)!r} resolves to {resolved}, outside the project folder {root}")
    if not exists:
        raise ValueError(f"file not found: {resolved}")
    return resolved


ProjectFile = Annotated[Path, AfterValidator(_resolve)]


class ModelRef(StrictModel):
    """A model file. The spec's `model` is the original, whose outputs on ONNX Runtime FP32 are the reference."""

    path: ProjectFile = Field(description="Path of the .onnx file, relative to the spec file.",
                              examples=["models/model.onnx"])


def _check_fixed(value: Any) -> Any:
    """A fixed input's value: a number, a (nested) list of numbers, or 'data' (each data file's array)."""
    if value is None or (isinstance(value, str) and value == "data"):
        return value
    def numbers(item: Any, depth: int) -> bool:
        if depth > 32:
            return False
        if isinstance(item, list):
            return all(numbers(i, depth + 1) for i in item)
        return isinstance(item, (int, float, bool)) and (not isinstance(item, float) or math.isfinite(item))
    if isinstance(value, str) or not numbers(value, 0):
        raise ValueError("fixed is a finite number, a list of numbers (an array), or 'data' for the data "
                         f"files' array of this input, not {value!r}")
    return value


class InputSpec(StrictModel):
    """How to feed one model input: its batch axis, or a value fixed for every sample, and how to
    make synthetic inputs for it (needed where its shape is dynamic)."""

    shape: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="Concrete shape, replacing the model's dynamic dimensions."
    )
    dtype: Literal[DTYPES] | None = Field(None, description="Defaults to the model's declared type.")  # type: ignore[valid-type]
    range: tuple[float, float] = Field((0.0, 1.0), description="Inclusive [low, high] of synthetic values.")
    batch_axis: int = Field(0, ge=0, le=31, description="The axis samples go along, in the model and in the data "
                            "files' array (1 for a recurrent state [layers, batch, hidden]); default 0.")
    fixed: Annotated[Any, AfterValidator(_check_fixed)] = Field(
        None, description="The same value for every sample: a number (a sample rate: 16000), a list (an array), or "
        "'data' for each data file's array of this input, fed whole.",
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "array"}, {"const": "data"}]})

    @field_validator("range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"range must be two finite numbers with low <= high, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _fixed_alone(self) -> InputSpec:
        if self.fixed is not None:
            others = sorted(n for n in ("shape", "range", "batch_axis") if n in self.model_fields_set)
            if others:
                raise ValueError(f"a fixed input has no {' or '.join(others)}: its value is fed whole to every sample")
        if self.dtype and self.dtype not in ("float32", "float16", "float64", "bool") and "range" in self.model_fields_set:
            low, high = self.range
            if math.floor(high) < math.ceil(low):
                raise ValueError(f"range {list(self.range)} holds no integer, and the input is {self.dtype}: give a "
                                 "range with at least one whole number in it")
        return self


def topk_of(metric: str) -> int | None:
    """k of a top-k metric ('top1' is 1, 'topk:5' is 5), None for any other metric."""
    if metric == "top1":
        return 1
    match = _TOPK.match(metric)
    return int(match.group(1)) if match else None


def is_percent_metric(metric: str) -> bool:
    return topk_of(metric) is not None


def metric_direction(metric: str) -> bool | None:
    """True if higher is better, False if lower is, None for a custom metric (the spec says)."""
    if metric == "mse":
        return False
    if metric == "top1" or _TOPK.match(metric):
        return True
    return None


def _check_metric(value: str) -> str:
    if value in BUILTIN_METRICS or _TOPK.match(value) or _CUSTOM_METRIC.match(value):
        if (m := _TOPK.match(value)) and int(m.group(1)) < 1:
            raise ValueError("k in topk:K must be at least 1")
        return value
    raise ValueError(f"unknown metric {value!r}: use top1, topk:K, mse or 'package.module:function'")


class EvaluationData(StrictModel):
    """A labelled set (.npz): one array per model input plus the labels."""

    path: ProjectFile = Field(description=".npz file with an array per model input and a labels array.",
                              examples=["data/test.npz"])
    labels: str = Field("labels", description="Name of the labels array in the .npz file.")
    metric: Annotated[str, AfterValidator(_check_metric)] = Field(
        "top1", description="top1 | topk:K (percent) | mse | 'package.module:function'.",
        examples=["top1", "topk:5", "mse", "mypackage.metrics:f1"],
        json_schema_extra={"anyOf": [
            {"enum": list(BUILTIN_METRICS), "description": "top1: percent of argmax equal to the label; mse: mean "
             "squared error (lower is better)."},
            {"pattern": r"^top(k:)?[1-9]\d*$", "description": "topk:K: percent of labels in the K highest scores."},
            {"pattern": _CUSTOM_METRIC.pattern, "description": "Your own: 'package.module:function' (set "
             "higher_is_better)."}]},
    )
    output: str | None = Field(None, description="Model output the metric reads; default: the first output.")
    higher_is_better: bool | None = Field(None, description="Required for a custom metric; implied otherwise.")
    limit: int | None = Field(None, ge=1, description="Use at most this many samples.")

    @model_validator(mode="after")
    def _direction(self) -> EvaluationData:
        implied = metric_direction(self.metric)
        if implied is None and self.higher_is_better is None:
            raise ValueError(f"custom metric {self.metric!r} needs higher_is_better: true or false")
        if implied is not None and self.higher_is_better not in (None, implied):
            raise ValueError(f"{self.metric} is {'higher' if implied else 'lower'}-is-better; drop higher_is_better")
        return self

    @property
    def is_higher_better(self) -> bool:
        implied = metric_direction(self.metric)
        return implied if implied is not None else bool(self.higher_is_better)


class DataSpec(StrictModel):
    calibration: ProjectFile | None = Field(None, description=".npz of representative inputs for INT8 calibration.",
                                            examples=["data/calibration.npz"])
    evaluation: EvaluationData | None = None
    parity: ProjectFile | None = Field(
        None, description=".npz of inputs (no labels: real images, audio) that parity compares on; default: the "
        "evaluation data, else seeded synthetic inputs.")
    parity_samples: int = Field(32, ge=1, le=100_000, description="Inputs compared for parity.")
    seed: int = Field(0, ge=0, description="Seed of synthetic inputs, so a mismatch can be replayed.")
    max_mb: float = Field(1024, gt=0, le=1_048_576, description="Largest uncompressed size of one data file's "
                          "arrays, MiB: a file over it is refused before it is read.")


_REGRESSION = BudgetField(RegressionBudget | None, Field(
    None, description="Against a stored baseline run (--edge-baseline NAME): {latency: 10%, accuracy: 0.5}.",
    examples=[{"latency": "10%", "accuracy": 0.5}]),
    override=RegressionOverride | None, bounds=tuple(RegressionBudget.model_fields))
_REGRESSION_ORDER = 55  # listed after the kinds whose figures a baseline keeps (latency 40, memory 50)


class BudgetsBase(StrictModel):
    """A target's budgets: the fields come from the registered check kinds (`assemble`), plus `regression`,
    which every kind that keeps baseline figures reads."""

    def checks(self) -> list[str]:
        """The checks these budgets ask for, in run order (regression only adds to the others)."""
        return [kind.name for kind in check_kinds() if kind().wanted(self)]

    def merged(self, override: BudgetsBase) -> BudgetsBase:
        """These budgets with the fields the override sets replaced (a section of several bounds —
        parity, latency_ms, memory_mb, regression, ops — merged bound by bound; `null` removes a budget)."""
        sections = _sections()
        data = self.model_dump(exclude_unset=True)
        for name in override.model_fields_set:
            value = getattr(override, name)
            mine = getattr(self, name)
            if name in sections and value is not None and mine is not None:
                data[name] = {**mine.model_dump(exclude_unset=True), **value.model_dump(exclude_unset=True)}
            else:
                data[name] = value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else value
        for name, bounds in sections.items():
            section = data.get(name)
            if not isinstance(section, dict) or not any(k in bounds for k in section):
                continue
            fields = type(getattr(self, name) or getattr(override, name)).model_fields
            # a bound not written keeps its default (ops' unsupported: 0), so it still counts as set
            if all(section.get(k, fields[k].default) is None for k in bounds):
                data[name] = None  # every bound dropped: no such check for this entry
        return type(self).model_validate(data)


def _sections() -> dict[str, tuple[str, ...]]:
    """Budget fields merged bound by bound, and their bounds' names."""
    return {name: budget.bounds for _, name, budget in _budget_fields() if budget.bounds}


def _budget_fields() -> list[tuple[int, str, BudgetField]]:
    """(order, name, field) of every budget: the check kinds', and `regression`."""
    found = [(kind.order, name, budget) for kind in check_kinds() for name, budget in kind.budgets.items()]
    found.append((_REGRESSION_ORDER, "regression", _REGRESSION))
    return sorted(found, key=lambda entry: entry[0])


_TARGET_BACKENDS = (list[Annotated[str, Field(pattern=_NAME)]] | None, Field(
    None, description="Backends to check on; default: every backend the device profile names.",
    examples=[["onnxruntime"], ["tflite"]]))
_TARGET_THREADS = (Annotated[int, Field(ge=1, le=1024)] | dict[Annotated[str, Field(pattern=_NAME)], Annotated[int, Field(ge=1, le=1024)]] | None, Field(
    None, description="CPU threads for every backend (4) or per backend ({onnxruntime: 4}); default: the device "
    "profile's, so runs on one device are comparable."))


class TargetSpecBase(StrictModel):
    """One target device's section: backends, budgets, threads, recipes (fields added by `assemble`, in that
    order, because budgets come from the check kinds)."""

    def threads_for(self, backend: str) -> int | None:
        if isinstance(self.threads, dict):
            return self.threads.get(backend)
        return self.threads

    def budgets_for(self, entry: str) -> Budgets:
        override = self.recipes.get(entry)
        return self.budgets.merged(override) if override is not None else self.budgets


class SpecBase(StrictModel):
    """One spec file: a model, its data, the recipes to try and the budgets per target (`targets` is added
    by `assemble`)."""

    edgecheck: Literal[1] = Field(description="Spec format version.")
    name: str | None = Field(None, description="A label for the spec; default: the file name.",
                             examples=["digits-cnn"])
    model: ModelRef = Field(description="The original model: its outputs on ONNX Runtime FP32 are the reference.",
                            examples=[{"path": "model.onnx"}])
    candidate: ModelRef | None = Field(
        None, description="Another model checked against `model` as its reference with the same budgets, e.g. a "
        "distilled student: its items are named 'candidate'; a compress chain starting with the step 'candidate' "
        "compresses it ([candidate, int8-static]). Size ratios are against `model`.",
    )
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    data: DataSpec = Field(default_factory=DataSpec)
    compress: list[CompressEntryField] = Field(
        default_factory=list, description="Artifacts to check besides the model itself ('none', always run): "
        "a recipe, {recipe: {params}}, a chain [step, step] or {name, steps}."
    )


def cross_field_problems(spec: Spec) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules that span fields, as (field path, message), so the loader can point at the line."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(spec.compress):
        if entry.name in seen:
            problems.append((("compress", index), f"a second entry named {entry.name!r} (the first is compress["
                             f"{seen[entry.name]}]): give one its own name, e.g. {{name: {entry.name}-2, steps: [...]}}"))
        seen.setdefault(entry.name, index)
        if len(entry.steps) > 1 and any(step.recipe == "none" for step in entry.steps):
            problems.append((("compress", index), "'none' in a chain does nothing: remove it"))
        if entry.name == CANDIDATE and [s.recipe for s in entry.steps] != [CANDIDATE]:
            problems.append((("compress", index), "'candidate' names the candidate model's own items; name this "
                             "entry otherwise"))
    for index, entry in enumerate(spec.compress):
        for number, step in enumerate(entry.steps):
            if step.recipe != CANDIDATE:
                continue
            loc = ("compress", index) if len(entry.steps) == 1 else ("compress", index, number)
            if spec.candidate is None:
                problems.append((loc, "step 'candidate' needs a candidate model: set candidate: {path: ...}"))
            elif number != 0 or step.params:
                problems.append((loc, "'candidate' takes no parameters and can only be a chain's first step"))
            elif len(entry.steps) == 1:
                problems.append((loc, "the candidate is always checked (as 'candidate'); list it only to start "
                                 "a chain, e.g. [candidate, int8-static]"))
    names = {"none", *seen} | ({CANDIDATE} if spec.candidate is not None else set())
    for target, section in spec.targets.items():
        for entry in section.recipes:
            if entry not in names:
                problems.append((("targets", target, "recipes", entry),
                                 f"no compress entry named {entry!r} (entries: {', '.join(sorted(names))})"))
        for entry in section.recipes:
            where = ("targets", target, "recipes", entry)
            problems += _override_problems(section, where, entry) or _emptied_problems(spec, section, where, entry, target)
        sections = [(("targets", target, "budgets"), section.budgets)]
        sections += [(("targets", target, "recipes", e), b) for e, b in section.recipes.items()]
        for where, budgets in sections:
            for kind in check_kinds():
                problems += kind().spec_problems(spec, where, budgets)
    return problems


def _override_problems(section: TargetSpec, where: tuple[str, ...], entry: str) -> list[tuple[tuple[str | int, ...], str]]:
    """An entry's budgets, as its override and the target's make them together, must be whole budgets:
    `latency_ms: {source: host}` where the target bounds no latency bounds nothing."""
    try:
        section.budgets_for(entry)
    except ValidationError as exc:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            if name and getattr(section.budgets, name, None) is None:
                message += f" (the target's budgets have no {name} for this entry to change)"
            problems.append(((*where, name) if name else where, message))
        return problems
    return []


def _emptied_problems(spec: Spec, section: TargetSpec, where: tuple[str, ...], entry: str,
                      target: str) -> list[tuple[tuple[str | int, ...], str]]:
    """An override that drops every check the target asks for would leave its entry unbuilt and unchecked,
    and the gate would pass on nothing: refused. Dropping some checks of several stays allowed."""
    if not section.budgets.checks() or section.budgets_for(entry).checks():
        return []
    if entry == "none":
        who = "the model itself ('none')"
    elif entry == CANDIDATE:
        who = "the candidate"
    else:
        index = next((i for i, e in enumerate(spec.compress) if e.name == entry), None)
        who = f"compress[{index}] {entry}" if index is not None else entry
    fix = "keep a bound" if entry in ("none", CANDIDATE) else "remove the entry or keep a bound"
    return [(where, f"{who}: its overrides leave no budget for target {target}: it would check nothing; {fix} "
             f"(the target checks {', '.join(section.budgets.checks())})")]


@dataclass(frozen=True)
class SpecModels:
    """The spec schema as the installed check kinds make it."""

    Budgets: type[BudgetsBase]
    BudgetsOverride: type[BudgetsBase]
    TargetSpec: type[TargetSpecBase]
    Spec: type[SpecBase]


_assembled: dict[tuple[type, ...], SpecModels] = {}


def spec_models() -> SpecModels:
    """The spec schema assembled from the registered check kinds' budget fields (rebuilt when the set of
    kinds changes, the same classes for the same kinds), so a third party's budget is validated,
    documented and merged like ours."""
    kinds = tuple(check_kinds())
    if kinds not in _assembled:
        if len(_assembled) > 8:  # kinds registered and removed by hand, over and over: keep memory bounded
            _assembled.clear()
        _assembled[kinds] = assemble()
    return _assembled[kinds]


def assemble() -> SpecModels:
    fields: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for _, name, budget in _budget_fields():
        fields[name] = (budget.annotation, copy.copy(budget.field))
        overrides[name] = (budget.override or budget.annotation, copy.copy(budget.field))
    budgets = create_model("Budgets", __base__=BudgetsBase, __module__=__name__, **fields)
    override = create_model("BudgetsOverride", __base__=budgets, __module__=__name__, **overrides,
                            __doc__="Budgets of one compress entry replacing the target's: any subset, `null` "
                            "drops one.")
    target = create_model(
        "TargetSpec", __base__=TargetSpecBase, __module__=__name__,
        backends=(_TARGET_BACKENDS[0], copy.copy(_TARGET_BACKENDS[1])),
        budgets=(budgets, Field(default_factory=budgets, description="What every artifact must meet on this "
                                "device; a compress entry's own (recipes:) replace some.",
                                examples=[{"size_mb": 0.5, "accuracy_drop": 1.0, "latency_ms": {"p95": 2},
                                           "parity": {"cosine": 0.999}}])),
        threads=(_TARGET_THREADS[0], copy.copy(_TARGET_THREADS[1])),
        recipes=(dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._+-]*$")], override], Field(
            default_factory=dict,
            description="Per compress entry (by name, or 'none' for the model itself): budgets that replace the "
            "target's, e.g. fp16: {parity: {rel_l2: 0.001}}. Parity bounds merge one by one; null removes a budget.",
        )))
    spec = create_model("Spec", __base__=SpecBase, __module__=__name__,
                        targets=(dict[Annotated[str, Field(pattern=_NAME)], target], Field(
                            min_length=1, description="Budgets per target device, by device profile name "
                            "(`edgecheck devices` lists them).",
                            examples=[{"host": {"budgets": {"latency_ms": {"p95": 2}}}}])))
    return SpecModels(budgets, override, target, spec)


def __getattr__(name: str) -> Any:
    """`Budgets`, `BudgetsOverride`, `TargetSpec` and `Spec` are assembled on first use (module attributes
    computed when asked, so importing this module imports no check)."""
    if name in SpecModels.__dataclass_fields__:
        return getattr(spec_models(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
