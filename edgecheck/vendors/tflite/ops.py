"""A .tflite artifact's real operators (builtin, custom, Flex) against a TFLite operator table, in the
same report the ONNX classification gives, so the `ops` budget reads both alike.

The operator list comes from the file itself (edgecheck.vendors.tflite.model reads the flatbuffer without
an interpreter), so what the converter really emitted is judged, not what the ONNX graph suggested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecheck.analysis.ops import NodeVerdict, OpsReport, classify_node
from edgecheck.analysis.optable import OpTable

FLEX_REASON = ("a select-TensorFlow (Flex) op: it needs the Flex delegate, which neither ai-edge-litert nor "
               "tflite-runtime includes (convert without Flex ops, or link a runtime with the Flex delegate)")


@dataclass(frozen=True)
class TfliteNode:
    """One operator of a .tflite file, with what the classifier and the failure message read."""

    name: str
    key: str
    where: str
    since_version: int  # the operator's version in the file: the table's ranges apply to it
    kind: str
    outputs: tuple[str, ...] = ()
    domain: str = ""
    local_function: bool = False

    @property
    def op_type(self) -> str:
        return self.key

    @property
    def label(self) -> str:
        return f"{self.where}/{self.name}" if self.where else self.name


@dataclass(frozen=True)
class TfliteGraph:
    nodes: tuple[TfliteNode, ...]
    fixed: frozenset[str] = field(default_factory=frozenset)  # a converter has folded its constants already


def tflite_graph(path: Path) -> TfliteGraph:
    """Every operator of every subgraph; a node is named after its first output tensor."""
    from edgecheck.vendors.tflite.model import read_tflite

    nodes = []
    for op in read_tflite(path).ops:
        name = op.outputs[0] if op.outputs and op.outputs[0] else f"{op.name.lower()}_{op.index}"
        nodes.append(TfliteNode(name, op.key, f"subgraph {op.subgraph}" if op.subgraph else "", op.version, op.kind,
                                tuple(op.outputs)))
    return TfliteGraph(tuple(nodes))


def classify_tflite(graph: TfliteGraph, table: OpTable) -> OpsReport:
    """Each operator against the table; a Flex op is unsupported with the reason (no table lists them)."""
    unchecked: list[str] = []
    verdicts = []
    for node in graph.nodes:
        if node.kind == "flex" and table.rule(node.key) is None:
            verdicts.append(NodeVerdict(node, "unsupported", FLEX_REASON, table.cite()))  # type: ignore[arg-type]
        else:
            verdicts.append(classify_node(node, graph, table, unchecked))  # type: ignore[arg-type]
    return OpsReport(table, verdicts, unchecked)
