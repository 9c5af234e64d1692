"""What `edgecheck ops`, `inspect` and `fit` print: the static analysis as tables people read before
they write a spec. Every latency figure here is an estimate and is labelled so."""

from __future__ import annotations

from dataclasses import dataclass

from edgecheck.analysis.costs import ModelFacts
from edgecheck.analysis.estimate import estimate_latency
from edgecheck.analysis.graph import AnalysedGraph
from edgecheck.analysis.ops import OpsReport, classify
from edgecheck.analysis.optable import OpTable
from edgecheck.analysis.static import fit_warning, table_for
from edgecheck.devices import DeviceProfile
from edgecheck.errors import CannotJudge
from edgecheck.textable import format_table


def _si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def _mib(value: float) -> str:
    return f"{value / 2**20:.3g} MiB"


def ops_lines(report: OpsReport, all_nodes: bool = False) -> list[str]:
    """The classification as a table: every node not supported as it is (or every node), then counts."""
    rows = [("node", "op", "where", "class", "reason")]
    for verdict in report.verdicts if all_nodes else report.offending():
        rows.append((verdict.node.name, verdict.node.key, verdict.node.where or "-", verdict.status,
                     verdict.reason or "-"))
    counts = report.counts()
    lines = [f"operator table: {report.table.citation()}"]
    lines += format_table(rows) if len(rows) > 1 else ["every node is supported as it is"]
    lines.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (of {len(report.verdicts)} nodes)")
    if report.unchecked:
        lines.append(f"{len(report.unchecked)} constraints could not be checked (types or shapes unknown), e.g. "
                     f"{report.unchecked[0]}")
    lines += [f"note: {note}" for note in report.notes]
    return lines


def inspect_lines(graph: AnalysedGraph, facts: ModelFacts, nodes: bool = False) -> list[str]:
    """Signature, totals and (with `nodes`) each node's cost."""
    model = graph.model.graph
    lines = [f"model: {graph.path}" if graph.path else "model:"]
    initializers = {t.name for t in model.initializer}
    for kind, values in (("input", [v for v in model.input if v.name not in initializers]), ("output", model.output)):
        for value in values:
            tensor = graph.tensor(value.name)
            dims = graph.dynamic_inputs.get(value.name)
            shape = list(tensor.shape) if tensor.shape is not None else "?"
            lines.append(f"  {kind} {value.name}: {tensor.dtype or '?'} {shape}"
                         + (f" (dynamic in the file: {dims})" if dims else ""))
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in graph.opsets.items())
    rows = [
        ("parameters", f"{facts.parameters:,} ({_mib(facts.parameter_bytes)})"),
        ("MACs", _si(facts.macs)),
        ("FLOPs", _si(facts.flops)),
        ("bytes moved", _mib(facts.bytes_moved) + " (every node's inputs and outputs, once each)"),
        ("activation peak", _mib(facts.activation_peak_bytes) + " (an estimate: live tensors in file order)"),
        ("precision", facts.precision),
        ("nodes", f"{len(graph.nodes)} ({len(graph.main_nodes())} in the main graph)"),
        ("opsets", opsets),
        ("shapes from", graph.shape_method),
    ]
    lines += format_table(rows, indent="  ")
    for note in facts.notes:
        lines.append(f"  note: {note}")
    if nodes:
        table = [("node", "op", "kind", "MACs", "weights", "activations", "output shape")]
        for cost in facts.nodes:
            out = graph.tensor(cost.node.outputs[0], cost.node.where) if cost.node.outputs else None
            shape = list(out.shape) if out is not None and out.shape is not None else "?"
            table.append((cost.node.label, cost.node.key, cost.kind, _si(cost.macs), _si(cost.weight_bytes, "B"),
                          _si(cost.activation_bytes, "B"), shape))
        lines += format_table(table, indent="  ")
    return lines


@dataclass(frozen=True)
class DeviceFit:
    device: str
    backend: str
    estimate_ms: float | None  # None: no cost model for this backend and precision
    estimate_text: str
    headroom: float | None  # share of the device's memory left after weights and activations
    unsupported: int | None
    fallback: int | None
    warning: str | None

    def rank_key(self) -> tuple:
        blocked = (self.unsupported or 0) > 0
        return (blocked, self.unsupported is None, self.estimate_ms is None, self.estimate_ms or 0.0,
                -(self.headroom or 0.0))


def fit_rows(graph: AnalysedGraph, facts: ModelFacts, profiles: dict[str, DeviceProfile],
             tables: dict[str, OpTable]) -> list[DeviceFit]:
    """Each built-in or project device on its preferred backend that has a cost model, ranked: runs
    everywhere first, then by estimated latency, then by memory headroom."""
    fits = []
    for name, profile in sorted(profiles.items()):
        if profile.is_host:
            continue
        backends = [b for b, s in profile.backends.items() if facts.precision in s.estimate] or list(profile.backends)
        backend = backends[0]
        try:
            estimate = estimate_latency(facts, profile, backend)
            estimate_ms: float | None = estimate.ms
            text = (f"{estimate.ms:.3g} ms ({estimate.low_ms:.3g}-{estimate.high_ms:.3g}, "
                    f"{'calibrated' if estimate.calibrated else 'uncalibrated'})")
        except CannotJudge as exc:
            estimate_ms, text = None, f"none ({exc})"
        headroom = None
        if profile.memory_gb:
            headroom = 1 - (facts.parameter_bytes + facts.activation_peak_bytes) / (profile.memory_gb * 2**30)
        try:
            counts = classify(graph, table_for(tables, profile, backend)).counts()
            unsupported, fallback = counts["unsupported"], counts["fallback"]
        except CannotJudge:
            unsupported = fallback = None
        fits.append(DeviceFit(name, backend, estimate_ms, text, headroom, unsupported, fallback,
                              fit_warning(facts, profile)))
    return sorted(fits, key=DeviceFit.rank_key)


def fit_lines(fits: list[DeviceFit]) -> list[str]:
    rows = [("rank", "device", "backend", "latency (ESTIMATE)", "memory left", "unsupported", "fallback")]
    for rank, fit in enumerate(fits, 1):
        rows.append((rank, fit.device, fit.backend, fit.estimate_text,
                     f"{fit.headroom:.1%}" if fit.headroom is not None else "-",
                     "-" if fit.unsupported is None else fit.unsupported,
                     "-" if fit.fallback is None else fit.fallback))
    lines = format_table(rows)
    lines.append("latency figures are estimates from an analytical cost model (not measurements); the range is "
                 "the model's stated error. Ranked: no unsupported node first (then devices with no operator table "
                 "for the model), then estimated latency, then memory.")
    for fit in fits:
        if fit.warning:
            lines.append(f"warning: {fit.warning}")
    return lines
