"""What each node costs, from shapes alone: multiply-accumulates, arithmetic, weights, bytes moved;
and, for the whole model, parameters, totals and an estimate of the activation memory peak.

Written here rather than taken from onnx-tool: its 1.0.1 raises NotImplementedError on
DynamicQuantizeLinear, which edgecheck's own int8-dynamic recipe emits, and it does not walk
If/Loop bodies. The rules are the usual ones (a Conv is output elements × kernel volume × input
channels per group) and are tested against published architecture figures in benchmarks/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from edgecheck.analysis.graph import AnalysedGraph, GraphNode, TensorType, np_name

Kind = Literal["compute", "epilogue", "elementwise", "movement", "free"]

# Conv-like and matrix products: the work a kernel does; (weight input index or None, "conv"|"matmul")
COMPUTE: dict[str, tuple[int | None, str]] = {
    "Conv": (1, "conv"), "ConvTranspose": (1, "convT"), "QLinearConv": (3, "conv"), "ConvInteger": (1, "conv"),
    "com.microsoft.FusedConv": (1, "conv"), "com.microsoft.QLinearConv": (3, "conv"),
    "Gemm": (1, "gemm"), "MatMul": (1, "matmul"), "MatMulInteger": (1, "matmul"), "QLinearMatMul": (3, "matmul"),
    "com.microsoft.FusedMatMul": (1, "matmul"), "com.microsoft.MatMulIntegerToFloat": (1, "matmul"),
}
# Matrix work without a formula here yet: counted as element-wise, and said so in the notes.
NO_COST_FORMULA = {"LSTM", "GRU", "RNN", "Einsum", "Attention", "com.microsoft.Attention",
                   "com.microsoft.MultiHeadAttention"}
# Element-wise ops a compiler folds into the kernel that produced their first input.
EPILOGUE = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Tanh", "Mul", "Add",
            "BatchNormalization", "Elu", "Selu", "Softplus", "Gelu", "com.microsoft.Gelu"}
# No arithmetic and, in practice, no copy: shape bookkeeping, the Q/DQ pairs that int8 kernels absorb,
# and control flow (its bodies' nodes are costed themselves).
FREE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Constant", "Shape", "Size", "Dropout",
        "QuantizeLinear", "DequantizeLinear", "ConstantOfShape", "If", "Loop", "Scan"}
QDQ = {"QuantizeLinear", "DequantizeLinear"}
MOVEMENT = {"Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "Pad", "Expand", "Tile",
            "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "ScatterND", "ScatterElements", "NonZero", "Where"}
# Activations an NPU evaluates by table lookup or a series, not folded for free like ReLU or Clip.
NONLINEAR = {"Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Exp", "Erf", "Gelu", "com.microsoft.Gelu", "Softplus",
             "Elu", "Selu", "Mish"}
# Arithmetic per output element for ops dearer than one operation each.
PER_ELEMENT = {"Sigmoid": 4, "Tanh": 4, "Exp": 4, "Log": 4, "Erf": 4, "Softmax": 5, "LogSoftmax": 5, "HardSwish": 3,
               "HardSigmoid": 2, "BatchNormalization": 2, "InstanceNormalization": 5, "LayerNormalization": 8,
               "Gelu": 8, "Div": 1, "Pow": 4, "Sqrt": 2, "Softplus": 4, "DynamicQuantizeLinear": 3}
POOLS = {"MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"}
REDUCTIONS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
              "ReduceProd", "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin", "TopK"}
QUANTIZED = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
             "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool"}


def dtype_bytes(dtype: str | None) -> int:
    sizes = {"float64": 8, "int64": 8, "uint64": 8, "float32": 4, "int32": 4, "uint32": 4, "float16": 2,
             "bfloat16": 2, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1}
    return sizes.get(dtype or "", 4)


def _bytes(tensor: TensorType | None) -> int:
    if tensor is None or tensor.elements is None:
        return 0
    return tensor.elements * dtype_bytes(tensor.dtype)


@dataclass(frozen=True)
class NodeCost:
    node: GraphNode
    kind: Kind
    macs: int  # multiply-accumulates
    flops: int  # arithmetic operations: 2 per MAC plus the rest
    weight_elements: int  # elements of the constant inputs it reads (weights, biases)
    weight_bytes: int
    activation_elements: int  # elements of the computed inputs it reads plus the outputs it writes
    activation_bytes: int
    known: bool  # every shape it needs was inferred
    # a dense convolution's (output pixels, output channels, input channels, kernel volume): an NPU computes
    # channels in fixed-width groups, so its work is that of the channels rounded up (CostModel.channel_align)
    conv_dims: tuple[int, int, int, int] | None = None
    nonlinear_elements: int = 0  # outputs of a sigmoid-like activation (a lookup pass on an NPU)

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.activation_bytes


@dataclass
class ModelFacts:
    """Facts of one model at fixed input shapes (the shapes used are in graph.input_shapes)."""

    graph: AnalysedGraph
    nodes: list[NodeCost]
    parameters: int
    parameter_bytes: int
    activation_peak_bytes: int
    precision: str  # int8 | fp16 | fp32: what most of the arithmetic is written for
    notes: list[str] = field(default_factory=list)
    uncounted: list[str] = field(default_factory=list)  # work the costs leave out: an estimate is a lower bound

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def bytes_moved(self) -> int:
        return sum(n.bytes_moved for n in self.nodes)

    @property
    def unknown_nodes(self) -> list[NodeCost]:
        return [n for n in self.nodes if not n.known and n.kind != "free"]

    def summary(self) -> dict[str, str]:
        """The facts as properties (name → text) for reports."""
        facts = {
            "parameters": str(self.parameters),
            "parameter_bytes": str(self.parameter_bytes),
            "macs": str(self.macs),
            "flops": str(self.flops),
            "bytes_moved": str(self.bytes_moved),
            "activation_peak_bytes": str(self.activation_peak_bytes),
            "precision": self.precision,
            "nodes": str(len(self.graph.nodes)),
            "input_shapes": "; ".join(f"{k}={list(v)}" for k, v in self.graph.input_shapes.items()),
            "shape_method": self.graph.shape_method,
        }
        if self.unknown_nodes:
            facts["unknown_cost_nodes"] = str(len(self.unknown_nodes))
        return facts


def _kind(node: GraphNode, producers: dict[str, str], fixed: set[str]) -> Kind:
    key = node.key
    if key in COMPUTE:
        return "compute"
    if key in FREE or node.local_function or all(o in fixed for o in node.outputs if o):
        return "free"
    if key in EPILOGUE and node.inputs and producers.get(node.inputs[0]) in ("compute", "epilogue"):
        return "epilogue"
    if key in MOVEMENT:
        return "movement"
    return "elementwise"


def _compute_macs(node: GraphNode, graph: AnalysedGraph, how: str, weight: int | None) -> int | None:
    out = graph.tensor(node.outputs[0], node.where) if node.outputs else None
    if out is None or out.elements is None:
        return None
    if how == "conv":
        w = graph.input_type(node, weight or 1)
        if w is None or not w.static or not w.shape:
            return None
        return out.elements * math.prod(int(d) for d in w.shape[1:])  # type: ignore[arg-type]
    if how == "convT":
        x, w = graph.input_type(node, 0), graph.input_type(node, 1)
        if x is None or w is None or x.elements is None or not w.static or not w.shape:
            return None
        return x.elements * math.prod(int(d) for d in w.shape[1:])  # type: ignore[arg-type]
    a = graph.input_type(node, 0)
    if a is None or not a.shape or not isinstance(a.shape[-1], int):
        return None
    k = a.shape[-1]
    if how == "gemm":
        trans_a = next((attr.i for attr in node.proto.attribute if attr.name == "transA"), 0)
        if trans_a and len(a.shape) == 2 and isinstance(a.shape[0], int):
            k = a.shape[0]
    return out.elements * int(k)


def _attr_ints(node: GraphNode, name: str) -> list[int]:
    return next((list(a.ints) for a in node.proto.attribute if a.name == name), [])


def node_cost(node: GraphNode, graph: AnalysedGraph, kind: Kind, fixed: set[str]) -> NodeCost:
    inputs = [graph.tensor(i, node.where) if i else None for i in node.inputs]
    outputs = [graph.tensor(o, node.where) for o in node.outputs if o]
    weights = [t for name, t in zip(node.inputs, inputs) if name and name in fixed and t is not None]
    computed = [t for name, t in zip(node.inputs, inputs) if name and name not in fixed and t is not None]
    known = all(t.elements is not None for t in (*computed, *outputs))
    out_elements = sum(t.elements or 0 for t in outputs)
    macs, flops = 0, 0
    key = node.key
    if kind == "free":
        return NodeCost(node, kind, 0, 0, 0, 0, 0, 0, known)
    if key in COMPUTE:
        weight, how = COMPUTE[key]
        found = _compute_macs(node, graph, how, weight)
        known = known and found is not None
        macs = found or 0
        flops = 2 * macs
    elif node.op_type in POOLS:
        flops = out_elements * max(1, math.prod(_attr_ints(node, "kernel_shape") or [1]))
    elif node.op_type in REDUCTIONS:
        flops = sum(t.elements or 0 for t in computed)
    elif kind != "movement":
        flops = out_elements * PER_ELEMENT.get(node.op_type, 1)
    weight_elements = sum(t.elements or 0 for t in weights)
    activation_elements = sum(t.elements or 0 for t in computed) + out_elements
    activation_bytes = sum(_bytes(t) for t in computed) + sum(_bytes(t) for t in outputs)
    return NodeCost(node, kind, macs, flops, weight_elements, sum(_bytes(t) for t in weights), activation_elements,
                    activation_bytes, known, _conv_dims(node, graph, macs) if key in COMPUTE else None,
                    out_elements if key in NONLINEAR else 0)


def _conv_dims(node: GraphNode, graph: AnalysedGraph, macs: int) -> tuple[int, int, int, int] | None:
    """(output pixels, output channels, input channels, kernel volume) of a dense (group 1) Conv."""
    if node.op_type not in ("Conv", "QLinearConv", "ConvInteger") or not macs:
        return None
    if next((a.i for a in node.proto.attribute if a.name == "group"), 1) != 1:
        return None  # grouped and depthwise convolutions: their own units, not channel groups
    w = graph.input_type(node, COMPUTE[node.key][0] or 1)
    if w is None or not w.static or not w.shape or len(w.shape) < 3:
        return None
    cout, cin = int(w.shape[0]), int(w.shape[1])  # type: ignore[arg-type]
    kernel = math.prod(int(d) for d in w.shape[2:])  # type: ignore[arg-type]
    return macs // (cout * cin * kernel), cout, cin, kernel


def _shape_text(tensor: TensorType) -> str:
    if tensor.shape is None:
        return "an unknown shape" if tensor.dtype else "an unknown type and shape"
    return "shape [" + ", ".join(str(d) if d is not None else "?" for d in tensor.shape) + "]"


def unknown_cause(cost: NodeCost, graph: AnalysedGraph) -> str:
    """Why a node's cost is unknown: the tensor whose shape inference left open, or the form no
    formula here covers."""
    node = cost.node
    for role, names in (("input", node.inputs), ("output", node.outputs)):
        for name in names:
            if name and not graph.tensor(name, node.where).static:
                maker = next((n for n in graph.nodes if name in n.outputs), None) if role == "input" else None
                made = f", made by {maker.label} ({maker.key})" if maker is not None else ""
                return f"{role} {name!r} has {_shape_text(graph.tensor(name, node.where))}{made}"
    return f"no cost formula here covers this {node.key} (its shapes are known)"


def unknown_advice(graph: AnalysedGraph) -> str:
    """What would make unknown shapes known, from how this graph's shapes were found."""
    if graph.assumed:
        return "give the input shapes in the spec's inputs: section (assumed here: " + "; ".join(graph.assumed) + ")"
    if graph.shape_method != "onnxruntime symbolic shape inference":
        failed = next((n for n in graph.notes if "shape inference failed" in n), graph.shape_method)
        return f"shape inference could not resolve them: {failed}"
    return ("the input shapes are fixed, so these shapes depend on values known only at run time (a symbolic "
            "dimension is named after the node that makes it): measure on the device instead")


def activation_peak(graph: AnalysedGraph, fixed: set[str]) -> int:
    """Largest total of computed tensors alive at once in the main graph, run in file order: a tensor
    lives from the node that writes it to the last node that reads it (graph inputs from the start,
    graph outputs to the end). An estimate: runtimes reuse and alias buffers in their own ways."""
    main = graph.main_nodes()
    last_use: dict[str, int] = {}
    for index, node in enumerate(main):
        for name in node.inputs:
            if name and name not in fixed:
                last_use[name] = index
    outputs = {o.name for o in graph.model.graph.output}
    live: dict[str, int] = {}
    for value in graph.model.graph.input:
        if value.name not in fixed:
            live[value.name] = _bytes(graph.tensor(value.name))
    peak = sum(live.values())
    for index, node in enumerate(main):
        for name in node.outputs:
            if name and name not in fixed:
                live[name] = _bytes(graph.tensor(name))
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if name not in outputs and last_use.get(name, -1) <= index:
                del live[name]
    return peak


def precision_of(graph: AnalysedGraph) -> str:
    """int8 if the graph is quantized (Q/DQ pairs or integer kernels), fp16 if most weights are
    float16, else fp32."""
    if any(n.op_type in QUANTIZED or n.key.startswith("com.microsoft.QLinear") for n in graph.nodes):
        return "int8"
    by_type: dict[str, int] = {}
    for tensor in graph.constants.values():
        dtype = np_name(tensor.data_type)
        count = math.prod(tensor.dims) if tensor.dims else 1
        by_type[dtype or "?"] = by_type.get(dtype or "?", 0) + count
    return "fp16" if by_type.get("float16", 0) > by_type.get("float32", 0) else "fp32"


def model_facts(graph: AnalysedGraph) -> ModelFacts:
    """Every node's cost and the model's totals."""
    fixed = set(graph.fixed)
    producers: dict[str, str] = {}
    costs: list[NodeCost] = []
    for node in graph.nodes:
        kind = _kind(node, producers, fixed)
        # a Q/DQ pair is free and transparent: what follows a convolution through it still folds into that
        # convolution (an INT8 network costs the same read from a QDQ artifact as from its float graph)
        through = (node.key in QDQ and node.inputs and producers.get(node.inputs[0]) in ("compute", "epilogue"))
        for name in node.outputs:
            producers[name] = producers[node.inputs[0]] if through else kind
        costs.append(node_cost(node, graph, kind, fixed))
    from edgecheck.analysis.constants import constant_tensor
    from edgecheck.model import graph_parameters

    initializers = list(graph.model.graph.initializer)
    parameters = graph_parameters(graph.model.graph)  # Constant-node weights (Paddle exports) and subgraphs too
    held = [t for t in map(constant_tensor, graph.model.graph.node) if t is not None]
    parameter_bytes = sum((math.prod(t.dims) if t.dims else 1) * dtype_bytes(graph.tensor(t.name).dtype)
                          for t in initializers + held)
    notes = list(graph.notes)
    uncounted: list[str] = []
    loops = [n.label for n in graph.nodes if n.op_type in ("Loop", "Scan")]
    if loops:
        uncounted.append(f"the bodies of {', '.join(loops)} are counted once: how often they run is known only at "
                         "run time")
    formula_less = sorted({n.key for n in graph.nodes if n.key in NO_COST_FORMULA})
    if formula_less:
        uncounted.append(f"{', '.join(formula_less)} have no cost formula here: their arithmetic counts as "
                         "element-wise work, far below what they do")
    unknown = [c.node.label for c in costs if not c.known and c.kind != "free"]
    if unknown:
        uncounted.append(f"{len(unknown)} nodes have shapes that could not be inferred and count as 0: "
                         + ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""))
    return ModelFacts(graph, costs, parameters, parameter_bytes, activation_peak(graph, fixed), precision_of(graph),
                      notes + uncounted, uncounted)
