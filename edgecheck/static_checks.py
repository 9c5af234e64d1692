"""The checks that read an artifact without running it: `ops`, and latency or memory judged on an
estimate. Each artifact format names its own authority, its static judge: an ONNX graph goes against
the operator table and the analytical cost model (here, the core's own), other formats' judges live
with their vendors (a .tflite file's own operators against a TFLite table; a .rknn against what the
compiler said when it built it).
"""

from __future__ import annotations

import dataclasses
import functools
import math

from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from pathlib import Path

from edgecheck.analysis import static
from edgecheck.analysis.ops import OpsReport
from edgecheck.analysis.optable import OpTable
from edgecheck.cache import content_key, tool_versions
from edgecheck.cache_records import RecordCache, code_fingerprint
from edgecheck.checks.ops import judge_ops
from edgecheck.checks.performance import judge_latency_estimate
from edgecheck.checks.result import CheckResult, result_from_dict, result_to_dict
from edgecheck.devices import DeviceProfile
from edgecheck.entrypoints import import_target
from edgecheck.errors import BackendUnavailable, CannotJudge
from edgecheck.formats import ArtifactFormat, format_of, format_named, known_formats, broken_formats
from edgecheck.plan import PlannedCheck

Shapes = dict[str, tuple[int, ...]]
# The format of a static check's record in the cache (edgecheck.cache_records): a result, or why none.
STATIC_RECORD = "static-check/1"


class StaticJudge:
    """A format's authority on placement and cost. The defaults judge nothing: they say why not.

    The `edgecheck` command's views of a file (`operators`, `classify`, `inspect_text`, `fit_lines`) are
    written by the judge of a format the command reads in its own way; where they answer None, the
    command reads the file as an ONNX graph.
    """

    command_views: ClassVar[bool] = False  # True: it writes the command's views below

    def content(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
                authority: Callable[[], OpTable | None], sha256: Callable[[Path], str]) -> dict[str, object] | None:
        """Everything this judge's verdict depends on besides the artifact's bytes and edgecheck's code: the
        key under which a warm run takes it from the cache. None (the default): never cached, since a
        vendor's judge may read more than the artifact (a build folder, a compiler's log). `sha256(path)`: a
        model file's content, external data included."""
        return None

    def operators(self, path: Path) -> object | None:
        """The file's operators, in the form `classify` takes (None: read it as an ONNX graph)."""
        return None

    def classify(self, operators: object, table: OpTable) -> OpsReport:
        raise CannotJudge("this format's judge lists no operators")

    def inspect_text(self, path: Path, as_json: bool) -> str | None:
        """What `edgecheck inspect` prints for the file (None: read it as an ONNX graph)."""
        return None

    def fit_lines(self, path: Path, profiles: dict[str, DeviceProfile], tables: dict[str, OpTable],
                  shown: str = "") -> list[str] | None:
        """What `edgecheck fit` prints for the file, named as `shown` (None: read it as an ONNX graph)."""
        return None

    def ops(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        raise CannotJudge(f"no operator check for a {path.suffix} artifact: its format names no operator table "
                          "(measure it on its backend)")

    def placed_ops(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path,
                   shapes: Callable[[], Shapes], reported: Mapping[str, Any], where: str) -> CheckResult:
        """The ops check judged on what a board's run of the artifact reported (`reported`: Measured.extra["native"]
        of a backend that `places_on_board`, measured on `where`, the board's label): where each layer of what the
        board built runs, the format's table on the source graph as the cross-check. Never kept in the cache (it
        is a board's run). The default: this format's judge cannot read a placement."""
        raise CannotJudge(f"no placement reader for a {path.suffix} artifact: its format's judge reads the artifact "
                          "only")

    def estimate(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path,
                 shapes: Callable[[], Shapes]) -> CheckResult:
        if planned.check == "memory":
            raise CannotJudge(f"no memory estimate for a {path.suffix} artifact: {_memory_estimates_from()}; "
                              + measure_advice(planned.backend, planned.target.name))
        raise CannotJudge(f"no latency estimate for a {path.suffix} artifact: the cost model reads ONNX graphs "
                          "(measure it, or judge the ONNX model's estimate)")


def measure_advice(backend: str, device: str) -> str:
    """What to do where a device figure has no estimate: measure on a board of the device, or, only where the backend
    runs on this machine, take this host's figure as a stand-in (`source: host`); a backend that cannot run here
    (tensorrt: on a Jetson only) says why instead of pointing at a stand-in that would skip too."""
    from edgecheck.backends.registry import check_available

    try:
        check_available(backend)
    except BackendUnavailable:
        return (f"measure it on a {device} board of the boards file ({backend} cannot run on this machine, so "
                "source: host would skip as well)")
    return f"measure it on a {device} board of the boards file, or use source: host to accept this host's figure"


def _memory_estimates_from() -> str:
    """Where a memory estimate can come from: the formats whose build reports one."""
    suffixes = []
    for name in known_formats():
        if name not in broken_formats() and "memory" in format_named(name).estimates:
            suffixes.extend(format_named(name).suffixes)
    return "estimates come from a vendor compiler's build" + (f" ({', '.join(suffixes)})" if suffixes else "")


class OnnxJudge(StaticJudge):
    """An ONNX graph against the operator table (or the installed runtime's own) and the cost model."""

    def content(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
                authority: Callable[[], OpTable | None], sha256: Callable[[Path], str]) -> dict[str, object] | None:
        """`judged_content`, for the ops check and the latency estimate (a graph has no memory estimate)."""
        if planned.check not in ("ops", "latency"):
            return None  # memory: no ONNX estimate, said at once
        return judged_content(analysis, planned, shapes, authority)

    def computes_in(self, path: Path) -> tuple[str, str] | None:
        """The precision the device computes this artifact in where the file says so apart from its graph (a build
        job's settings: a float graph built in FP16), and where that comes from; None: the graph's own."""
        return None

    def ops(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        budget = planned.budgets.ops
        assert budget is not None
        graph = analysis.analysis(path, shapes())
        table = analysis.table_for(planned.target, planned.backend, budget.table)
        report = analysis.classify(graph.graph, table)
        disagreements: list[str] = []
        runtime = None if budget.table else authority()  # a table the spec names is its choice
        if runtime is not None:
            runtime_report = analysis.classify(graph.graph, runtime)
            disagreements = static.disagreements(report, runtime_report)
            report = runtime_report
        result = judge_ops(report, budget, disagreements)
        untold = [c for c in ("unsupported", "fallback", "constraint") if c not in report.table.judges]
        if untold:  # a class the table cannot tell apart (ONNX Runtime CUDA's placement): never a pass on it
            why = report.table.notes.get("judges") or f"the {report.table.name} table cannot tell these nodes apart"
            result.measurements = [
                dataclasses.replace(m, cannot_judge=f"{m.name.removeprefix('ops.')}: {why}")
                if m.name.removeprefix("ops.") in untold and m.budget is not None else m for m in result.measurements]
        result.notes.extend(report.notes)  # how many nodes fold away, and at which input shapes
        result.facts["ops.folded_nodes"] = str(report.folded)
        result.facts["measured_on"] = "nowhere: static analysis of the artifact against the operator table (no run)"
        result.facts.update(analysis.fit_facts(graph, planned.target))
        result.warnings.extend(analysis.fit_warnings(graph, planned.target))
        return result

    def estimate(self, analysis: static.StaticAnalysis, planned: PlannedCheck, path: Path,
                 shapes: Callable[[], Shapes]) -> CheckResult:
        if planned.check == "memory":
            return super().estimate(analysis, planned, path, shapes)
        budget = planned.budgets.latency_ms
        assert budget is not None
        graph = analysis.analysis(path, shapes())
        computed = self.computes_in(path)
        estimate = analysis.estimate(graph, planned.target, planned.backend, computed[0] if computed else None)
        result = judge_latency_estimate(estimate.ms, estimate.low_ms, estimate.high_ms, budget,
                                        "lower bound" if math.isinf(estimate.high_ms) else
                                        "stated error range" if estimate.calibrated else "uncalibrated guess",
                                        cannot_judge=estimate.cannot_judge())
        if computed:
            result.notes.append(f"estimated in {estimate.precision}: {computed[1]}")
        result.notes.extend(estimate.notes)
        result.facts.update(estimate.facts())
        result.facts["measured_on"] = estimate.label()
        result.facts.update(analysis.fit_facts(graph, planned.target))
        result.warnings.extend(analysis.fit_warnings(graph, planned.target))
        return result


def judged_content(analysis: static.StaticAnalysis, planned: PlannedCheck, shapes: Callable[[], Shapes],
                   authority: Callable[[], OpTable | None]) -> dict[str, object]:
    """What a graph's static verdict reads besides the file: the input shapes, the device profile (its cost
    models and size rule), the backend, the budgets, and for `ops` every operator table's bytes and the
    installed runtime's own table where it decides (a table the spec names is its choice), and the installed
    onnx and onnxruntime (shape inference, inlining, symbolic shapes and the runtime's own table are theirs;
    read without importing them)."""
    parts: dict[str, object] = {
        "check": planned.check, "backend": planned.backend, "shapes": sorted(shapes().items()),
        "device": planned.target.model_dump(mode="json"), "budgets": planned.budgets.model_dump(mode="json"),
        "libraries": tool_versions(("onnx", "onnxruntime"))}
    if planned.check == "ops":
        parts["tables"] = analysis.tables_fingerprint()
        runtime = None if planned.budgets.ops.table else authority()
        parts["runtime_table"] = runtime.model_dump(mode="json") if runtime is not None else None
    return parts


def judge_of(artifact_format: ArtifactFormat) -> StaticJudge:
    """The format's judge; a format without one gets the default, which says why it cannot judge."""
    if not artifact_format.judge:
        return StaticJudge()
    cls = import_target(artifact_format.judge)
    if not (isinstance(cls, type) and issubclass(cls, StaticJudge)):
        raise CannotJudge(f"format {artifact_format.name!r} names {artifact_format.judge} as its judge, "
                          "which is not an edgecheck StaticJudge class")
    return cls()


@functools.lru_cache(maxsize=None)
def plugin_version(cls: type) -> str:
    """Which version of a third-party class (a plug-in's judge or format) is installed: its distribution's
    version and its module file's SHA-256, so that a plug-in's upgrade (or an edit to a conftest's judge)
    judges again. edgecheck's own classes: '' (edgecheck's code is in every key already)."""
    import hashlib
    import sys
    from importlib.metadata import packages_distributions, version

    module = cls.__module__
    if module == "edgecheck" or module.startswith("edgecheck."):
        return ""
    found = [module]
    for distribution in sorted(set(packages_distributions().get(module.partition(".")[0], ()))):
        try:
            found.append(f"{distribution} {version(distribution)}")
        except Exception:  # metadata without a version: the file's digest below still tells
            found.append(f"{distribution} unknown")
    source = getattr(sys.modules.get(module), "__file__", None)
    try:
        found.append(hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else "no file")
    except OSError as exc:
        found.append(f"unreadable: {exc}")
    return " ".join(found)


class StaticChecks:
    """The executor's door to the static checks: finds the artifact's format, asks its judge. A judge that
    says what its verdict depends on (`StaticJudge.content`) has it kept in `records` by content, so a warm
    run of an unchanged artifact neither analyses the graph nor reads a table; `sha256(path)` is the
    artifact's content (external data included)."""

    def __init__(self, analysis: static.StaticAnalysis, records: RecordCache | None = None,
                 sha256: Callable[[Path], str] | None = None):
        self.static = analysis
        self.records = records if records is not None else RecordCache(None)
        self.sha256 = sha256
        self._judges: dict[str, StaticJudge] = {}

    def judge(self, artifact_format: ArtifactFormat) -> StaticJudge:
        """The format's judge, made once; a format without one gets the default, which says why not."""
        if artifact_format.name not in self._judges:
            self._judges[artifact_format.name] = judge_of(artifact_format)
        return self._judges[artifact_format.name]

    def ops(self, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
            authority: Callable[[], OpTable | None]) -> CheckResult:
        """`authority()`: the installed runtime's own table where it is the device's runtime (it decides
        over the shipped table, which is checked against it); a format's judge asks it where it applies."""
        assert planned.budgets.ops is not None
        judge = self.judge(format_of(path))
        return self._remembered(judge, planned, path, shapes, authority,
                                lambda: judge.ops(self.static, planned, path, shapes, authority))

    def placed_ops(self, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes], reported: Mapping[str, Any],
                   where: str) -> CheckResult:
        """The ops check on a board's report of where each layer ran (StaticJudge.placed_ops): never cached."""
        assert planned.budgets.ops is not None
        return self.judge(format_of(path)).placed_ops(self.static, planned, path, shapes, reported, where)

    def estimate(self, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes]) -> CheckResult:
        """Latency (or memory) of a device target whose spec accepts an estimate."""
        judge = self.judge(format_of(path))
        return self._remembered(judge, planned, path, shapes, lambda: None,
                                lambda: judge.estimate(self.static, planned, path, shapes))

    def _remembered(self, judge: StaticJudge, planned: PlannedCheck, path: Path, shapes: Callable[[], Shapes],
                    authority: Callable[[], OpTable | None], judged: Callable[[], CheckResult]) -> CheckResult:
        """The judge's verdict from the cache where its content is known there, else judged and stored. A
        CannotJudge is kept too (the same content cannot be judged the next time either); any other error
        is raised and nothing stored, and a result its judge marks not to keep (`CheckResult.keep` False:
        a part of it failed for a reason that may pass) is shown but not stored."""
        if self.records.root is None or self.sha256 is None:
            return judged()
        parts = judge.content(self.static, planned, path, shapes, authority, self.sha256)
        if parts is None:
            return judged()
        key = content_key(record=STATIC_RECORD, code=code_fingerprint(), judge=type(judge).__qualname__,
                          plugins=[plugin_version(type(judge)), plugin_version(type(format_of(path)))],
                          artifact=self.sha256(path), **parts)

        unkept: list[CheckResult] = []

        def compute() -> dict[str, object]:
            try:
                result = judged()
            except CannotJudge as exc:
                return {"cannot_judge": str(exc)}
            result.facts = {str(k): str(v) for k, v in result.facts.items()}  # as the executor writes them
            if not result.keep:  # judged without a part a calmer machine may give: shown, never stored
                unkept.append(result)
            return {"result": result_to_dict(result)}

        record, _ = self.records.remember("static", key, compute, keep=lambda record: not unkept)
        if "cannot_judge" in record:
            raise CannotJudge(str(record["cannot_judge"]))
        return result_from_dict(record["result"])  # type: ignore[arg-type]
