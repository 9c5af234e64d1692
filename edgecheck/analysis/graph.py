"""A model's graph as later analysis reads it: every node (If/Loop/Scan bodies included; model-local
functions inlined at each call, as runtimes do), each tensor's type and shape with the inputs fixed, and which tensors are
constant.

Shapes come from ONNX Runtime's symbolic shape inference (it follows Shape→Reshape chains and
ORT's own operators), else from onnx's, else are left unknown; which one was used, and every
dimension we had to assume, is said in `notes` so a figure built on them is never taken for more
than it is.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecheck.analysis.optable import op_key
from edgecheck.model import Dim, load_onnx


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
    def fixed(self) -> frozenset[str]:
        """Tensors fixed before any input arrives: initializers, Constants, and what is computed only
        from them (a DequantizeLinear of int8 weights, a Transpose of a weight)."""
        fixed = set(self.constants)
        for node in self.nodes:
            if node.op_type.startswith("Random") or node.op_type in ("If", "Loop", "Scan"):
                continue
            ins = [i for i in node.inputs if i]
            if ins and all(i in fixed for i in ins):
                fixed.update(o for o in node.outputs if o)
        return frozenset(fixed)

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


def _infer(model: Any) -> tuple[Any, str, list[str]]:
    import onnx

    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        logger = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
        level, here = logger.level, os.getcwd()
        logger.setLevel(logging.ERROR)
        # where it cannot infer every shape it saves "sym_shape_infer_temp.onnx" in the working folder
        # before raising: run it in a scratch folder so no user's folder gets a stray file
        with tempfile.TemporaryDirectory(prefix="edgecheck-shapes-") as scratch:
            try:
                os.chdir(scratch)
                inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
            finally:
                os.chdir(here)
                logger.setLevel(level)
        if inferred is not None:
            return inferred, "onnxruntime symbolic shape inference", []
        first = "it gave no result"
    except ImportError:
        first = "onnxruntime is not installed"
    except Exception as exc:  # its failures on unusual graphs are many and untyped
        first = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
    try:
        return (onnx.shape_inference.infer_shapes(model, data_prop=True), "onnx shape inference",
                [f"onnxruntime's symbolic shape inference failed ({first}); used onnx's, which resolves fewer shapes"])
    except Exception as exc:
        return model, "none", [f"shape inference failed ({first}; onnx: {type(exc).__name__}: {exc}); shapes "
                               "the file does not state are unknown"]


def analyse(source: Path | str | Any, input_shapes: dict[str, tuple[int, ...]] | None = None) -> AnalysedGraph:
    """The graph of a model file (checked and loaded safely, weights not read) or of a ModelProto."""
    import onnx

    if isinstance(source, (str, Path)):
        path: Path | None = Path(source)
        model = load_onnx(path)
    else:
        path, model = None, onnx.ModelProto()
        model.CopyFrom(source)
    inlined = []
    if model.functions:  # judge what runtimes run: the body at each call, with the call's shapes and names
        import onnx.inliner

        inlined = sorted({f"{f.domain}.{f.name}" for f in model.functions})
        model = onnx.inliner.inline_local_functions(model)
    used, dynamic, notes = fix_input_shapes(model, input_shapes)
    if inlined:
        notes.append(f"model-local functions inlined at each call, as runtimes do: {', '.join(inlined)}")
    model, method, more = _infer(model)
    notes.extend(more)
    opsets = {(o.domain or ""): int(o.version) for o in model.opset_import}
    functions = {(f.domain, f.name): f for f in model.functions}
    tensors: dict[str, TensorType] = {}
    constants: dict[str, Any] = {}
    nodes: list[GraphNode] = []
    _walk_graph(model.graph, "", opsets, functions, tensors, constants, nodes, set())
    return AnalysedGraph(path, model, nodes, tensors, constants, opsets, used, method, dynamic, notes)


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
