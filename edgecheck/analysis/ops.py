"""Each node of a model against an operator table: supported, supported but breaking a stated
constraint, falls back (to the CPU, off the fast path), or unsupported — with the reason and the
rule's source, so a failure says what to change and who says so."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecheck.analysis.graph import AnalysedGraph, GraphNode, TensorType
from edgecheck.analysis.optable import Constraint, OpTable

OpClass = Literal["supported", "constraint", "fallback", "unsupported"]
CLASSES: tuple[OpClass, ...] = ("supported", "constraint", "fallback", "unsupported")


@dataclass(frozen=True)
class NodeVerdict:
    node: GraphNode
    status: OpClass
    reason: str = ""
    rule: str = ""  # where the rule comes from


@dataclass(frozen=True)
class CompiledLayer:
    """A layer of a compiled model (an .rknn's, a TensorRT engine's), shaped like a graph node for the ops
    report: a compiler's own placement is judged with the same report as a table's verdict on a graph."""

    name: str
    key: str
    where: str = ""

    @property
    def label(self) -> str:
        return self.name


@dataclass
class OpsReport:
    table: OpTable
    verdicts: list[NodeVerdict]
    unchecked: list[str] = field(default_factory=list)  # constraints not checkable (unknown shapes)
    notes: list[str] = field(default_factory=list)
    folded: int = 0  # nodes that fold away at conversion (from constants or from shapes)

    def counts(self) -> dict[str, int]:
        found = Counter(v.status for v in self.verdicts)
        return {status: found.get(status, 0) for status in CLASSES}

    def offending(self) -> list[NodeVerdict]:
        order = {status: i for i, status in enumerate(reversed(CLASSES))}
        return sorted((v for v in self.verdicts if v.status != "supported"), key=lambda v: order[v.status])


def _attribute(node: GraphNode, name: str) -> Any:
    from onnx import helper

    for attribute in node.proto.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _values(value: Any) -> list[Any]:
    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _within(value: Any, rule: Constraint) -> bool:
    if rule.values is not None and value not in rule.values:
        return False
    if isinstance(value, (int, float)):
        if rule.min is not None and value < rule.min:
            return False
        if rule.max is not None and value > rule.max:
            return False
    return True


def _limits(rule: Constraint) -> str:
    parts = []
    if rule.values is not None:
        parts.append("one of " + ", ".join(map(str, rule.values)))
    if rule.min is not None:
        parts.append(f">= {rule.min:g}")
    if rule.max is not None:
        parts.append(f"<= {rule.max:g}")
    return " and ".join(parts)


def check_constraint(rule: Constraint, node: GraphNode, graph: AnalysedGraph) -> str | None | Literal[False]:
    """None if the node meets the rule, a description of the breach if not, False if it cannot be told."""
    index = rule.input if rule.input is not None else 0
    tensor: TensorType | None = graph.input_type(node, index)
    if rule.kind == "dtype":
        if tensor is None or tensor.dtype is None:
            return False
        return None if tensor.dtype in (rule.values or []) else f"input {index} is {tensor.dtype}, not {_limits(rule)}"
    if rule.kind == "attribute":
        value = _attribute(node, rule.attribute or "")
        if value is None:
            value = rule.default
        if value is None:
            return None
        bad = [v for v in _values(value) if not _within(v, rule)]
        return f"{rule.attribute} = {value} is not {_limits(rule)}" if bad else None
    if rule.kind in ("rank", "dim"):
        if tensor is None or tensor.shape is None:
            return False
        if rule.kind == "rank":
            rank = len(tensor.shape)
            return None if _within(rank, rule) else f"input {index} has rank {rank}, not {_limits(rule)}"
        axis = rule.axis or 0
        if not -len(tensor.shape) <= axis < len(tensor.shape):
            return None
        size = tensor.shape[axis]
        if not isinstance(size, int):
            return False
        return None if _within(size, rule) else f"input {index} dimension {axis} is {size}, not {_limits(rule)}"
    if rule.kind == "constant_input":
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        name = node.inputs[index]
        return None if name in graph.fixed else f"input {index} ({name!r}) is computed at run time, not a constant"
    if rule.kind == "static_shape":
        names = [n for n in (*node.inputs, *node.outputs) if n]
        dynamic = [n for n in names if not graph.tensor(n, node.where).static]
        return f"shape of {', '.join(map(repr, dynamic[:3]))} is not fixed" if dynamic else None
    return False


def _version_text(ranges: list[tuple[int, int | None]]) -> str:
    return ", ".join(f"{a}+" if b is None else (f"{a}" if a == b else f"{a}-{b}") for a, b in ranges)


def classify_node(node: GraphNode, graph: AnalysedGraph, table: OpTable, unchecked: list[str]) -> NodeVerdict:
    verdict = _own_verdict(node, graph, table, unchecked)
    if verdict.status not in ("fallback", "unsupported") or not table.fallbacks:
        return verdict
    refused = []
    for other in table.fallbacks:  # ONNX Runtime's next provider, in order: the first that runs it takes it
        theirs = classify_node(node, graph, other, [])
        if theirs.status in ("supported", "constraint"):
            return NodeVerdict(node, "fallback", f"{verdict.reason}; falls back: {other.title} runs it "
                               f"({other.cite()})", verdict.rule)
        refused.append(f"{other.title}: {theirs.reason}")
    return NodeVerdict(node, "unsupported", f"{verdict.reason}; and nothing it falls back to runs it ("
                       + "; ".join(refused) + ")", verdict.rule)


def _own_verdict(node: GraphNode, graph: AnalysedGraph, table: OpTable, unchecked: list[str]) -> NodeVerdict:
    if node.local_function:
        return NodeVerdict(node, "supported", "a function the model defines: runtimes inline it, and its body's "
                           "nodes are classified one by one")
    if node.outputs and all(o in graph.fixed for o in node.outputs if o):
        if any(o in getattr(graph, "from_shapes", ()) for o in node.outputs):
            return NodeVerdict(node, "supported", "computes only from tensor shapes, known once the input shapes "
                               "are fixed: folded away at conversion")
        return NodeVerdict(node, "supported", "computes only from constants: folded away at conversion")
    rule = table.rule(node.key)
    cite = table.cite()
    if rule is None:
        return NodeVerdict(node, table.unlisted.status, f"{node.key} is not listed: {table.unlisted.reason}", cite)
    if rule.status != "supported":
        return NodeVerdict(node, rule.status, rule.note or f"{table.title} marks {node.key} {rule.status}", cite)
    if rule.versions is not None and node.since_version is not None:
        if not any(a <= node.since_version and (b is None or node.since_version <= b) for a, b in rule.versions):
            return NodeVerdict(node, "unsupported", f"{node.key} version {node.since_version} (at the model's opset) "
                               f"is not covered; covered versions: {_version_text(rule.versions)}", cite)
    worst: NodeVerdict | None = None  # every rule is checked: a harsher breach listed later must win
    for constraint in rule.constraints:
        breach = check_constraint(constraint, node, graph)
        if breach is False:
            unchecked.append(f"{node.label}: {constraint.kind} rule not checkable (type or shape unknown)")
            continue
        if breach and (worst is None or CLASSES.index(constraint.then) > CLASSES.index(worst.status)):
            words = "; ".join(t for t in (constraint.text, table.notes.get(constraint.kind, "")) if t)
            worst = NodeVerdict(node, constraint.then, f"{breach}" + (f" ({words})" if words else ""), cite)
    return worst or NodeVerdict(node, "supported", rule.note, cite)


def classify(graph: AnalysedGraph, table: OpTable) -> OpsReport:
    """Every node, subgraph and function bodies included, against one table."""
    unchecked: list[str] = []
    verdicts = [classify_node(node, graph, table, unchecked) for node in graph.nodes]
    folded = sum(1 for v in verdicts if v.reason.endswith("folded away at conversion"))
    return OpsReport(table, verdicts, unchecked, folding_notes(graph), folded)


def folding_notes(graph: AnalysedGraph) -> list[str]:
    """How many nodes fold away, from constants and from shapes, and at which input shapes."""
    outputs = [(n, [o for o in n.outputs if o]) for n in graph.nodes if not n.local_function]
    folded = [(n, outs) for n, outs in outputs if outs and all(o in graph.fixed for o in outs)]
    shaped = [n for n, outs in folded if any(o in graph.from_shapes for o in outs)]
    if not folded:
        return []
    parts = [f"{len(folded) - len(shaped)} compute only from constants"] if len(folded) > len(shaped) else []
    if shaped:
        shapes = "; ".join(f"{name} {list(shape)}" for name, shape in graph.input_shapes.items())
        parts.append(f"{len(shaped)} compute only from tensor shapes at the input shapes used ({shapes}): "
                     + ", ".join(sorted({n.key for n in shaped})))
    note = (f"{len(folded)} of {len(graph.nodes)} nodes fold away at conversion and are not judged as runtime "
            f"operators: " + "; ".join(parts))
    if shaped and graph.assumed:
        note += ("; some of those shapes were assumed (" + "; ".join(graph.assumed) + "): give the real ones, as "
                 "a model converted at other shapes folds other values")
    return [note]


def disagreements(first: OpsReport, second: OpsReport) -> list[str]:
    """Nodes two reports class differently (the shipped table against a runtime's own verdict)."""
    found = []
    for a, b in zip(first.verdicts, second.verdicts):
        if a.status != b.status:
            found.append(f"{a.node.label} ({a.node.key}): {first.table.name} ({first.table.version}) says {a.status}, "
                         f"{second.table.name} ({second.table.version}) says {b.status}")
    return found
