"""The static checks' one door for the executor: analyses cached per artifact, the operator table for
a target and backend, the latency estimate, and the fit of a model to a device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecheck.analysis.costs import ModelFacts, model_facts
from edgecheck.analysis.estimate import LatencyEstimate, estimate_latency
from edgecheck.analysis.graph import AnalysedGraph, analyse
from edgecheck.analysis.ops import OpsReport, classify, disagreements
from edgecheck.analysis.optable import OpTable, load_tables, tables_fingerprint
from edgecheck.devices import DeviceProfile
from edgecheck.errors import CannotJudge, DeviceError

__all__ = ["StaticAnalysis", "disagreements", "table_for", "fit_warning"]


@dataclass(frozen=True)
class Analysis:
    graph: AnalysedGraph
    facts: ModelFacts


def table_for(tables: dict[str, OpTable], device: DeviceProfile, backend: str, name: str | None = None,
              model_format: str = "onnx") -> OpTable:
    """The spec's table if it names one, else the profile's for the backend, else the backend's table
    for this device, else its general one — among the tables that read the artifact's format."""
    if name:
        if name not in tables:
            raise CannotJudge(f"no operator table named {name!r} (known: {', '.join(sorted(tables))})")
        if tables[name].format != model_format:
            raise CannotJudge(f"operator table {name!r} reads {tables[name].format} models; this artifact is "
                              f"{model_format}")
        return tables[name]
    support = device.backends.get(backend)
    if support is not None and support.ops and support.ops not in tables:
        raise CannotJudge(f"no operator table named {support.ops!r} (known: {', '.join(sorted(tables))})")
    readable = {key: t for key, t in tables.items() if t.format == model_format}
    if support is not None and support.ops in readable:
        return readable[support.ops]
    mine = [t for t in readable.values() if t.backend == backend and device.name in t.devices]
    general = [t for t in readable.values() if t.backend == backend and not t.devices]
    found = mine or general
    if not found:
        raise CannotJudge(f"no operator table for {model_format} models on backend {backend!r} on {device.name} "
                          f"(tables: {', '.join(sorted(tables))}); add one with the ini option edge_ops_dir")
    return found[0]


def fit_warning(facts: ModelFacts, device: DeviceProfile) -> str | None:
    """The field's rule of thumb on model size for the device, as a warning when the model is outside it."""
    if device.params_m is None:
        return None
    low, high = device.params_m
    millions = facts.parameters / 1e6
    if millions <= high:
        return None  # a model below the range only leaves the device headroom
    return (f"{millions:.3g} M parameters is above the {low:g}-{high:g} M that {device.name} is known to suit "
            f"(the field's rule of thumb, from its profile): expect latency and memory trouble")


class StaticAnalysis:
    def __init__(self, ops_dirs: list[Path]):
        self.ops_dirs = list(ops_dirs)
        self._tables: dict[str, OpTable] | None = None
        self._fingerprint: str | None = None
        self._analyses: dict[tuple, Analysis] = {}

    def tables(self) -> dict[str, OpTable]:
        if self._tables is None:
            try:
                self._tables = load_tables(self.ops_dirs)
            except DeviceError as exc:
                raise CannotJudge(str(exc)) from None
        return self._tables

    def tables_fingerprint(self) -> str:
        """SHA-256 of every operator table file (the built-in folders' and the project's, by name and bytes)
        and of the installed formats that validate them: what `tables()` reads, without parsing it."""
        if self._fingerprint is None:
            self._fingerprint = tables_fingerprint(self.ops_dirs)
        return self._fingerprint

    def analysis(self, path: Path, shapes: dict[str, tuple[int, ...]]) -> Analysis:
        key = (Path(path), tuple(sorted(shapes.items())))
        if key not in self._analyses:
            graph = analyse(path, shapes)
            self._analyses[key] = Analysis(graph, model_facts(graph))
        return self._analyses[key]

    def table_for(self, device: DeviceProfile, backend: str, name: str | None = None,
                  model_format: str = "onnx") -> OpTable:
        return table_for(self.tables(), device, backend, name, model_format)

    @staticmethod
    def classify(graph: AnalysedGraph, table: OpTable) -> OpsReport:
        return classify(graph, table)

    @staticmethod
    def estimate(analysis: Analysis, device: DeviceProfile, backend: str, precision: str | None = None) -> LatencyEstimate:
        """`precision`: the one the artifact is computed in where not its graph's (a .trtjob built in FP16)."""
        return estimate_latency(analysis.facts, device, backend, precision)

    @staticmethod
    def fit_facts(analysis: Analysis, device: DeviceProfile) -> dict[str, str]:
        facts = {f"model.{key}": value for key, value in analysis.facts.summary().items()}
        dynamic = analysis.graph.dynamic_inputs
        if dynamic:
            facts["model.dynamic_inputs"] = "; ".join(f"{name} {dims}" for name, dims in dynamic.items())
        if device.params_m is not None:
            low, high = device.params_m
            millions = analysis.facts.parameters / 1e6
            where = "within" if low <= millions <= high else ("above" if millions > high else "below")
            facts["model.fit"] = f"{millions:.3g} M parameters, {where} the {low:g}-{high:g} M {device.name} suits"
        if device.memory_gb:
            need = analysis.facts.parameter_bytes + analysis.facts.activation_peak_bytes
            facts["model.memory_share"] = f"{need / (device.memory_gb * 2**30):.3g} of {device.name}'s {device.memory_gb:g} GB"
        return facts

    @staticmethod
    def fit_warnings(analysis: Analysis, device: DeviceProfile) -> list[str]:
        warning = fit_warning(analysis.facts, device)
        return [warning] if warning else []

