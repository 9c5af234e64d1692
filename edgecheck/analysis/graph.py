"""A model's graph as later analysis reads it: every node (If/Loop/Scan bodies included; model-local
functions inlined at each call, as runtimes do), each tensor's type and shape with the inputs fixed, and which tensors are
constant.

Shapes come from ONNX Runtime's symbolic shape inference (it follows Shape→Reshape chains and
ORT's own operators), else from onnx's, else are left unknown; which one was used, and every
dimension we had to assume, is said in `notes` so a figure built on them is never taken for more
than it is. Inference runs in a child process with memory and time limits (`shapes`): a model
whose shape arithmetic would take gigabytes fails with the node, and the session goes on.

With the input shapes fixed, shape arithmetic (Shape → Gather → Concat → Reshape, a Range up to
a dimension) is known before any input arrives, and converters fold it away at build time:
`fixed` holds those tensors too, so such nodes are not judged as runtime operators.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecheck.analysis.optable import op_key
from edgecheck.analysis.shapes import Limits, infer_shapes
from edgecheck.model import Dim, load_onnx


# Never folded even when every input is known: control flow (its bodies run at run time) and random draws.
NEVER_FOLDED = frozenset({"If", "Loop", "Scan", "Bernoulli", "Multinomial"})


@dataclass(frozen=True)
class TensorType:
    dtype: str | None  # numpy name (float32, int8, ...), or None if unknown
    shape: tuple[Dim, ...] | None  # None: rank unknown

    @property
    def static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) and d >= 0 for d in self.shape)

    @property
    def elements(self) -> int | None:
        if not self.static:
            return None
        count = 1
        for d in self.shape or ():
            count *= int(d)  # type: ignore[arg-type]
        return count


@dataclass(frozen=True)
class GraphNode:
    """One node where it sits: `where` is '' for the main graph, else the chain of bodies holding it
    ('loop_1.body', 'function my.Block')."""

    proto: Any  # onnx.NodeProto
    name: str
    where: str
    domain: str
    since_version: int | None  # the op schema's version at the model's opset; None for unknown ops
    local_function: bool = False  # a call of a function the model defines: its body's nodes are listed too

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def key(self) -> str:
        return op_key(self.domain, self.op_type)

    @property
    def label(self) -> str:
        return f"{self.where}/{self.name}" if self.where else self.name

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)


@dataclass
class AnalysedGraph:
    path: Path | None
    model: Any  # onnx.ModelProto with inferred value_info
    nodes: list[GraphNode]
    tensors: dict[str, TensorType]
    constants: dict[str, Any]  # name → TensorProto (initializers and Constant outputs), every scope
    opsets: dict[str, int]
    input_shapes: dict[str, tuple[int, ...]]
    shape_method: str
    dynamic_inputs: dict[str, list[str]] = field(default_factory=dict)  # input → its dynamic dimensions' names
    notes: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)  # input dimensions neither given nor fixed in the file

    def tensor(self, name: str, where: str = "") -> TensorType:
        """A tensor as the body `where` sees it: its own names first, then each enclosing graph's
        (two If bodies may both name an output 't')."""
        scope = where
        while True:
            found = self.tensors.get(f"{scope}\x00{name}" if scope else name)
            if found is not None:
                return found
            if not scope:
                return TensorType(None, None)
            scope = scope.rpartition("/")[0]

    def input_type(self, node: GraphNode, index: int) -> TensorType | None:
        if index >= len(node.proto.input) or not node.proto.input[index]:
            return None
        return self.tensor(node.proto.input[index], node.where)

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    @functools.cached_property
    def _folding(self) -> tuple[frozenset[str], frozenset[str]]:
        fixed = set(self.constants)
        from_shapes: set[str] = set()
        for node in self.nodes:
            if node.op_type.startswith("Random") or node.op_type in NEVER_FOLDED:
                continue
            ins = [i for i in node.inputs if i]
            outs = [o for o in node.outputs if o]
            if node.key in ("Shape", "Size") and ins and ins[0] not in fixed:
                if self.tensor(ins[0], node.where).static:  # its value is the shape the inputs fix
                    fixed.update(outs)
                    from_shapes.update(outs)
                continue
            if ins and all(i in fixed for i in ins):
                fixed.update(outs)
                if any(i in from_shapes for i in ins):
                    from_shapes.update(outs)
        return frozenset(fixed), frozenset(from_shapes)

    @property
    def fixed(self) -> frozenset[str]:
        """Tensors fixed before any input arrives, as a converter folds them at build time: initializers,
        Constants, what is computed only from them (a DequantizeLinear of int8 weights, a Transpose of a
        weight), and, the input shapes being fixed, the Shape or Size of a tensor whose shape is known
        and what is computed from those (shape arithmetic: Gather, Cast, Concat, Range, Slice, ...)."""
        return self._folding[0]

    @property
    def from_shapes(self) -> frozenset[str]:
        """The fixed tensors whose value comes from a tensor's shape (folded only at fixed input shapes)."""
        return self._folding[1]

    def main_nodes(self) -> list[GraphNode]:
        return [n for n in self.nodes if not n.where]


def np_name(elem_type: int) -> str | None:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return None


def _value_type(value: Any) -> TensorType:
    if value.type.WhichOneof("value") != "tensor_type":
        return TensorType(None, None)
    tensor = value.type.tensor_type
    dtype = np_name(tensor.elem_type) if tensor.elem_type else None
    if not tensor.HasField("shape"):
        return TensorType(dtype, None)
    dims: list[Dim] = []
    for dim in tensor.shape.dim:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or None))
    return TensorType(dtype, tuple(dims))


def fix_input_shapes(model: Any, shapes: dict[str, tuple[int, ...]] | None
                     ) -> tuple[dict[str, tuple[int, ...]], dict[str, list[str]], list[str]]:
    """Set every graph input's dimensions in place: given shapes first, unknown dimensions as 1.
    Returns the shapes used, the dimensions that were dynamic in the file, and a note for each assumed."""
    shapes = dict(shapes or {})
    initializers = {t.name for t in model.graph.initializer}
    used: dict[str, tuple[int, ...]] = {}
    dynamic: dict[str, list[str]] = {}
    notes: list[str] = []
    for value in model.graph.input:
        if value.name in initializers or value.type.WhichOneof("value") != "tensor_type":
            continue
        dims = value.type.tensor_type.shape.dim
        given = shapes.get(value.name)
        if given is not None and len(given) != len(dims):
            raise ValueError(f"input {value.name!r} has rank {len(dims)}; the shape given, {list(given)}, has rank "
                             f"{len(given)}")
        fixed = []
        for axis, dim in enumerate(dims):
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                dynamic.setdefault(value.name, []).append(dim.dim_param or "?")
            if given is not None:
                size = int(given[axis])
            elif dim.HasField("dim_value") and dim.dim_value > 0:
                size = int(dim.dim_value)
            else:
                size = 1
                notes.append(f"input {value.name!r} dimension {axis} ({dim.dim_param or '?'}) taken as 1")
            dim.Clear()
            dim.dim_value = size
            fixed.append(size)
        used[value.name] = tuple(fixed)
    if dynamic:
        notes.insert(0, "dynamic input dimensions: " + "; ".join(f"{k} {v}" for k, v in dynamic.items()))
    return used, dynamic, notes


def analyse(source: Path | str | Any, input_shapes: dict[str, tuple[int, ...]] | None = None,
            limits: Limits | None = None) -> AnalysedGraph:
    """The graph of a model file (checked and loaded safely, weights not read) or of a ModelProto.
    Functions are inlined and shapes inferred in a child process within `limits` (see `shapes`)."""
    import onnx

    if isinstance(source, (str, Path)):
        path: Path | None = Path(source)
        model = load_onnx(path)
    else:
        path, model = None, onnx.ModelProto()
        model.CopyFrom(source)
    used, dynamic, notes = fix_input_shapes(model, input_shapes)
    inferred = infer_shapes(model, path, limits)
    model = inferred.model
    notes.extend(inferred.notes)
    opsets = {(o.domain or ""): int(o.version) for o in model.opset_import}
    functions = {(f.domain, f.name): f for f in model.functions}
    tensors: dict[str, TensorType] = {}
    constants: dict[str, Any] = {}
    nodes: list[GraphNode] = []
    _walk_graph(model.graph, "", opsets, functions, tensors, constants, nodes, set())
    assumed = [n for n in notes if n.endswith(" taken as 1")]
    return AnalysedGraph(path, model, nodes, tensors, constants, opsets, used, inferred.method, dynamic, notes,
                         assumed)


def _walk_graph(graph: Any, where: str, opsets: dict[str, int], functions: dict, tensors: dict[str, TensorType],
                constants: dict[str, Any], nodes: list[GraphNode], names: set[str]) -> None:
    def key(name: str) -> str:
        return f"{where}\x00{name}" if where else name

    for initializer in graph.initializer:
        constants.setdefault(initializer.name, initializer)
        tensors.setdefault(key(initializer.name), TensorType(np_name(initializer.data_type), tuple(initializer.dims)))
    for value in (*graph.input, *graph.value_info, *graph.output):
        found = _value_type(value)
        known = tensors.get(key(value.name))
        if known is None or (known.shape is None and found.shape is not None):
            tensors[key(value.name)] = found
    _walk_nodes(graph.node, where, opsets, functions, tensors, constants, nodes, names)


def _walk_nodes(protos: Any, where: str, opsets: dict[str, int], functions: dict, tensors: dict[str, TensorType],
                constants: dict[str, Any], nodes: list[GraphNode], names: set[str]) -> None:
    import onnx

    for index, proto in enumerate(protos):
        domain = "" if proto.domain == "ai.onnx" else proto.domain
        name = proto.name or f"{proto.op_type}_{index}"
        if name in names:  # unnamed or duplicate names: make the label unique within its body
            name = f"{name}#{index}"
        names.add(name)
        local = (proto.domain, proto.op_type) in functions
        since = None
        if not local:
            try:
                since = onnx.defs.get_schema(proto.op_type, opsets.get(domain, 1), domain).since_version
            except Exception:  # onnx.defs.SchemaError: an op onnx does not know (a runtime's own, a custom one)
                since = None
        nodes.append(GraphNode(proto, name, where, domain, since, local))
        if proto.op_type == "Constant" and not domain:
            for attribute in proto.attribute:
                if attribute.name == "value" and proto.output:
                    constants[proto.output[0]] = attribute.t
                    name_key = f"{where}\x00{proto.output[0]}" if where else proto.output[0]
                    tensors.setdefault(name_key, TensorType(np_name(attribute.t.data_type), tuple(attribute.t.dims)))
        for attribute in proto.attribute:
            bodies = ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
            for number, body in enumerate(bodies):
                suffix = attribute.name if len(bodies) == 1 else f"{attribute.name}[{number}]"
                inner = f"{where}/{name}.{suffix}" if where else f"{name}.{suffix}"
                _walk_graph(body, inner, opsets, functions, tensors, constants, nodes, set())
