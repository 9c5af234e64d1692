"""Magnitude pruning of Conv / Gemm / MatMul weights, unstructured or by whole output channels.

Unstructured pruning zeroes the smallest weights of each layer: the file keeps its size (zeros are
stored densely), so it only pays off on a sparse-aware runtime. Structured pruning removes whole
output channels and slices every consumer to match, so the model really is smaller and faster; a
layer is only pruned when the walk from its output reaches consumers that can all be fixed
(channel-preserving ops, then a Conv, a Gemm/MatMul or Flatten -> Gemm/MatMul). Anything else
(residual Add, Concat, Reshape, a graph output, a subgraph) leaves the layer alone, with the reason
in the artifact's notes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edgecheck.compress import (Artifact, RecipeContext, RecipeNotApplicable, RecipeParams, artifact_path,
                                load_model_for_editing, register_recipe, save_model)
from edgecheck.analysis.constants import fold_weight_constants, folded_note
from edgecheck.errors import RecipeError

UNARY_CHANNEL_PRESERVING = frozenset({
    "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Dropout",
    "Identity", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
ELEMENTWISE = frozenset({"Add", "Mul", "Sub", "Div"})
DENSE_ZEROS = "zeros stored densely: the file does not shrink without a sparse-aware runtime"
MAX_LISTED = 8  # entries shown in a one-line note before "+N more"
SMALL_TENSOR = 4096  # initializers up to this size keep their data for shape inference


class PruneParams(RecipeParams):
    """Parameters of `prune`; the same sparsity applies to every eligible layer."""

    sparsity: float = Field(0.5, gt=0, lt=1, description=(
        "fraction of weights (unstructured) or of output channels (structured) removed per layer"))
    structured: bool = Field(False, description=(
        "remove whole output channels and slice their consumers (smaller, faster) instead of zeroing weights"))
    op_types: tuple[Literal["Conv", "Gemm", "MatMul"], ...] = Field(
        ("Conv", "Gemm", "MatMul"), min_length=1, description="kinds of layer whose weights are pruned")
    exclude_nodes: tuple[str, ...] = Field((), description=(
        "node names left untouched (a layer whose pruning would have to edit one of them is not pruned)"))


class _Blocked(Exception):
    """A layer cannot be pruned; the message says why and goes into the `skipped` note."""


def _int_attribute(node: Any, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _subgraph_reads(node: Any) -> set[str]:
    """Every tensor name read inside the node's subgraphs (If/Loop/Scan bodies), nested ones too."""
    graphs = [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]
    names: set[str] = set()
    for graph in graphs:
        for inner in graph.node:
            names.update(n for n in inner.input if n)
            names |= _subgraph_reads(inner)
    return names


class _Graph:
    """The main graph's producers/consumers and its initializers as (possibly edited) numpy arrays."""

    def __init__(self, model: Any, shapes: dict[str, tuple[int | None, ...]]):
        self.graph = model.graph
        self.shapes = shapes
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.graph_inputs = {i.name for i in self.graph.input}
        self.graph_outputs = {o.name for o in self.graph.output}
        self.nodes = list(self.graph.node)  # one wrapper per node, so id() names it for the whole run
        self.labels = {id(node): node.name or f"{node.op_type}#{i}" for i, node in enumerate(self.nodes)}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        self.subgraph_reader: dict[str, str] = {}
        self.uses: Counter[str] = Counter()
        for node in self.nodes:
            for name in dict.fromkeys(n for n in node.input if n):
                self.consumers[name].append(node)
            self.uses.update(n for n in node.input if n)
            for name in _subgraph_reads(node):
                self.subgraph_reader.setdefault(name, self.labels[id(node)])
                self.uses[name] += 1
        self.changed: dict[str, np.ndarray] = {}

    def label(self, node: Any) -> str:
        return self.labels[id(node)]

    def array(self, name: str) -> np.ndarray | None:
        """The initializer's current value (after edits), or None when `name` is not an initializer."""
        from onnx import numpy_helper

        if name in self.changed:
            return self.changed[name]
        tensor = self.initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def private_array(self, name: str, what: str) -> np.ndarray:
        """An initializer that only one node reads, so it can be sliced without touching anyone else."""
        value = self.array(name) if name else None
        if value is None:
            raise _Blocked(f"{what} is not an initializer")
        if self.uses[name] > 1 or name in self.graph_inputs or name in self.graph_outputs:
            raise _Blocked(f"{what} ({name}) is shared with other nodes")
        return value

    def unused(self, name: str) -> bool:
        return not name or (not self.consumers.get(name) and name not in self.graph_outputs
                            and name not in self.subgraph_reader)


@dataclass
class _Plan:
    """The edits that structured pruning of one layer needs; applied only if the whole walk succeeds."""

    channels: int
    kept: np.ndarray
    axis_from_end: int  # the channel axis of every tensor on the walk, counted from the end
    rank: int | None
    excluded: frozenset[str]
    slices: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    groups: list[Any] = field(default_factory=list)  # depthwise Convs whose group becomes len(kept)

    def slice(self, name: str, axis: int, indices: np.ndarray) -> None:
        if name in self.slices:
            raise _Blocked(f"{name} would be sliced twice")
        self.slices[name] = (axis, indices)


def _slice_per_channel(graph: _Graph, plan: _Plan, name: str, what: str) -> None:
    value = graph.private_array(name, what)
    if value.shape != (plan.channels,):
        raise _Blocked(f"{what} has shape {list(value.shape)}, not [{plan.channels}]")
    plan.slice(name, 0, plan.kept)


def _slice_dense_input(graph: _Graph, plan: _Plan, node: Any, features: int, indices: np.ndarray) -> None:
    """A Gemm/MatMul reading the pruned features: slice its weight's input axis."""
    label = graph.label(node)
    if node.op_type == "Gemm" and _int_attribute(node, "transA", 0):
        raise _Blocked(f"Gemm {label} has transA=1")
    axis = 1 if node.op_type == "Gemm" and _int_attribute(node, "transB", 0) else 0
    weight = graph.private_array(node.input[1], f"the weight of {label}")
    if weight.ndim != 2 or weight.shape[axis] != features:
        raise _Blocked(f"the weight of {label} does not take {features} features")
    plan.slice(node.input[1], axis, indices)


def _fix_flatten(graph: _Graph, plan: _Plan, node: Any, tensor: str) -> None:
    """Flatten(axis=1) then Gemm/MatMul: channel c owns features c*H*W .. (c+1)*H*W."""
    label = graph.label(node)
    axis = _int_attribute(node, "axis", 1)
    rank = plan.rank
    if rank is None or (axis + rank if axis < 0 else axis) != 1 or rank + plan.axis_from_end != 1:
        raise _Blocked(f"Flatten {label} does not keep channels in contiguous blocks")
    shape = graph.shapes.get(tensor, ())
    if len(shape) != rank or not all(isinstance(d, int) and d > 0 for d in shape[2:]):
        raise _Blocked(f"the spatial size before Flatten {label} is unknown")
    block = int(np.prod(shape[2:], dtype=np.int64))
    features = (plan.kept[:, None] * block + np.arange(block)).ravel()
    out = node.output[0]
    if out in graph.graph_outputs or out in graph.subgraph_reader:
        raise _Blocked(f"the output of Flatten {label} leaves the graph")
    for reader in graph.consumers.get(out, []):
        if reader.op_type not in ("Gemm", "MatMul") or list(reader.input).index(out) != 0:
            raise _Blocked(f"Flatten {label} feeds {reader.op_type} {graph.label(reader)}")
        if graph.label(reader) in plan.excluded:
            raise _Blocked(f"feeds excluded node {graph.label(reader)}")
        _slice_dense_input(graph, plan, reader, plan.channels * block, features)


def _fix_consumer(graph: _Graph, plan: _Plan, node: Any, tensor: str) -> list[str]:
    """Plan the edits one consumer of a pruned tensor needs; returns the tensors the walk goes on with."""
    op, label = node.op_type, graph.label(node)
    if node.domain not in ("", "ai.onnx"):
        raise _Blocked(f"reaches {op} {label} of domain {node.domain!r}")
    if label in plan.excluded:
        raise _Blocked(f"feeds excluded node {label}")
    positions = [i for i, name in enumerate(node.input) if name == tensor]
    if op in ELEMENTWISE:
        if len(positions) != 1:
            raise _Blocked(f"{op} {label} reads it twice")
        other = node.input[1 - positions[0]]
        operand = graph.array(other)
        if operand is None or other in graph.graph_inputs:
            raise _Blocked(f"{op} {label} combines it with another activation ({other})")
        limit = plan.rank if plan.rank is not None else -plan.axis_from_end
        at = operand.ndim + plan.axis_from_end
        if operand.ndim > limit:
            raise _Blocked(f"the operand of {op} {label} has more axes than the activation")
        if at >= 0 and operand.shape[at] == plan.channels:
            graph.private_array(other, f"the operand of {op} {label}")
            plan.slice(other, at, plan.kept)
        elif at >= 0 and operand.shape[at] != 1:
            raise _Blocked(f"the operand of {op} {label} does not broadcast per channel")
        return [node.output[0]]
    if positions != [0]:
        raise _Blocked(f"{op} {label} reads it as input {positions[-1]}")
    if op in UNARY_CHANNEL_PRESERVING or op == "BatchNormalization":
        if not all(graph.unused(extra) for extra in node.output[1:]):
            raise _Blocked(f"a second output of {op} {label} is used")
        if op == "BatchNormalization":
            for name, what in zip(node.input[1:5], ("scale", "bias", "mean", "var")):
                _slice_per_channel(graph, plan, name, f"the {what} of BatchNormalization {label}")
        return [node.output[0]]
    if op == "Conv":
        group = _int_attribute(node, "group", 1)
        weight = graph.private_array(node.input[1], f"the weight of {label}")
        if group == 1:
            if weight.shape[1] != plan.channels:
                raise _Blocked(f"Conv {label} does not take {plan.channels} channels")
            plan.slice(node.input[1], 1, plan.kept)
            return []
        if group == plan.channels and weight.shape[:2] == (plan.channels, 1):  # depthwise: keep walking
            plan.slice(node.input[1], 0, plan.kept)
            if len(node.input) > 2 and node.input[2]:
                _slice_per_channel(graph, plan, node.input[2], f"the bias of {label}")
            plan.groups.append(node)
            return [node.output[0]]
        raise _Blocked(f"reaches grouped Conv {label} (group={group})")
    if op in ("Gemm", "MatMul"):
        if plan.axis_from_end != -1:
            raise _Blocked(f"{op} {label} does not contract the channel axis")
        _slice_dense_input(graph, plan, node, plan.channels, plan.kept)
        return []
    if op == "Flatten":
        _fix_flatten(graph, plan, node, tensor)
        return []
    raise _Blocked(f"reaches {op} {label}")


def _plan_layer(graph: _Graph, node: Any, sparsity: float, excluded: frozenset[str]) -> _Plan:
    """Choose the output channels to keep (largest L2 norm) and plan every edit that removing the others needs."""
    op, out = node.op_type, node.output[0]
    weight = graph.private_array(node.input[1], "the weight")
    if op == "Conv":
        if _int_attribute(node, "group", 1) != 1:
            raise _Blocked("grouped Conv")
        axis, axis_from_end, rank = 0, 1 - weight.ndim, weight.ndim
    elif op == "Gemm":
        axis, axis_from_end, rank = (0 if _int_attribute(node, "transB", 0) else 1), -1, 2
    else:
        if weight.ndim != 2:
            raise _Blocked("MatMul weight is not 2-D")
        axis, axis_from_end, rank = 1, -1, (len(graph.shapes[out]) if out in graph.shapes else None)
    if out in graph.graph_outputs:
        raise _Blocked("output is a graph output")
    channels = weight.shape[axis]
    keep = max(1, int(round((1 - sparsity) * channels)))
    if keep >= channels:
        raise _Blocked(f"too few output channels to remove any ({channels})")
    norms = np.sqrt(np.sum(np.square(np.moveaxis(weight, axis, 0).reshape(channels, -1), dtype=np.float64), axis=1))
    order = np.argsort(norms, kind="stable")
    plan = _Plan(channels, np.sort(order[channels - keep:]), axis_from_end, rank, excluded)
    plan.slice(node.input[1], axis, plan.kept)
    if len(node.input) > 2 and node.input[2]:
        bias = graph.private_array(node.input[2], "the bias")
        if bias.ndim and bias.shape[-1] == channels:
            plan.slice(node.input[2], bias.ndim - 1, plan.kept)
        elif bias.ndim and bias.shape[-1] != 1:
            raise _Blocked(f"bias shape {list(bias.shape)} does not broadcast per channel")
    pending = [out]
    while pending:
        tensor = pending.pop()
        if tensor in graph.graph_outputs:
            raise _Blocked(f"{tensor} is a graph output")
        if tensor in graph.subgraph_reader:
            raise _Blocked(f"{tensor} is read inside the subgraph of {graph.subgraph_reader[tensor]}")
        for consumer in graph.consumers.get(tensor, []):
            pending.extend(_fix_consumer(graph, plan, consumer, tensor))
    return plan


def _apply(graph: _Graph, plan: _Plan) -> None:
    for name, (axis, indices) in plan.slices.items():
        graph.changed[name] = np.take(graph.array(name), indices, axis=axis)
    for conv in plan.groups:  # depthwise: group == channels >= 2, so the attribute is there
        next(a for a in conv.attribute if a.name == "group").i = len(plan.kept)


def _prune_magnitude(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero the round(sparsity * size) smallest |w| (stable order: ties go to the earlier weight)."""
    flat = weight.ravel().copy()
    count = int(round(sparsity * flat.size))
    flat[np.argsort(np.abs(flat), kind="stable")[:count]] = 0
    return flat.reshape(weight.shape)


def _shape_model(model: Any) -> Any:
    """A copy of the model without the data of large initializers: shape inference needs only their shapes."""
    import onnx

    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph = light.graph
    graph.name = model.graph.name
    for part in ("node", "input", "output", "sparse_initializer"):
        getattr(graph, part).extend(getattr(model.graph, part))
    for tensor in model.graph.initializer:
        if int(np.prod(tensor.dims, dtype=np.int64)) <= SMALL_TENSOR:
            graph.initializer.append(tensor)
        else:
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    return light


def _inferred(model: Any, strict: bool) -> Any:
    import onnx

    return onnx.shape_inference.infer_shapes(_shape_model(model), strict_mode=strict).graph


def _known_shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """Shapes of the original model's tensors (spatial sizes do not change when channels go)."""
    try:
        graph = _inferred(model, strict=False)
    except Exception:  # a model shape inference cannot handle: Flatten consumers just stay unknown
        graph = model.graph
    shapes = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                      for d in info.type.tensor_type.shape.dim)
    return shapes


def _listed(items: list[str], separator: str = ", ") -> str:
    shown = separator.join(items[:MAX_LISTED])
    return shown + (f"{separator}+{len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _parameter_count(model: Any) -> int:
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)


def _prune_structured(graph: _Graph, layers: list[Any], params: PruneParams, skipped: list[str]
                      ) -> tuple[list[str], int, int]:
    """Remove output channels layer by layer (in graph order); returns the layer notes, removed and total channels."""
    done, removed, total = [], 0, 0
    for node in layers:
        label = graph.label(node)
        try:
            plan = _plan_layer(graph, node, params.sparsity, frozenset(params.exclude_nodes))
        except _Blocked as reason:
            skipped.append(f"{label}: {reason}")
            shape = graph.array(node.input[1]).shape
            total += shape[0 if node.op_type == "Conv" or _int_attribute(node, "transB", 0) else -1]
            continue
        except (ValueError, IndexError, TypeError) as exc:
            raise RecipeError(f"prune: node {label}: {type(exc).__name__}: {exc}") from exc
        _apply(graph, plan)
        done.append(f"{label} {plan.channels}->{len(plan.kept)}")
        removed, total = removed + plan.channels - len(plan.kept), total + plan.channels
    return done, removed, total


def _prune_unstructured(graph: _Graph, layers: list[Any], params: PruneParams, skipped: list[str]
                        ) -> tuple[list[str], int, int]:
    """Zero the smallest weights of each layer (a shared weight once); returns the notes, zeros and weights."""
    done, zeros, total, seen = [], 0, 0, set()
    for node in layers:
        name = node.input[1]
        if name in seen:
            continue
        seen.add(name)
        sharing = [graph.label(n) for n in graph.consumers[name] if graph.label(n) in params.exclude_nodes]
        if sharing:
            skipped.append(f"{graph.label(node)}: weight shared with excluded node {sharing[0]}")
            continue
        pruned = _prune_magnitude(graph.array(name), params.sparsity)
        layer_zeros = int(np.count_nonzero(pruned == 0))
        if layer_zeros:
            graph.changed[name] = pruned
            done.append(f"{graph.label(node)} {layer_zeros / pruned.size:.2f}")
        zeros, total = zeros + layer_zeros, total + pruned.size
    return done, zeros, total


@register_recipe("prune", PruneParams, tools=("onnx", "numpy"),
                 summary="magnitude pruning of Conv/Gemm/MatMul weights: zeroed weights or removed output channels")
def compress_prune(model: Path, params: PruneParams, context: RecipeContext) -> Artifact:
    """Prune each eligible layer by weight magnitude and write the result into `context.out_dir`."""
    import onnx
    from onnx import TensorProto, numpy_helper

    proto = load_model_for_editing(model)
    folded = fold_weight_constants(proto)  # weights held in Constant nodes (Paddle exports) become visible
    before = _parameter_count(proto)
    graph = _Graph(proto, _known_shapes(proto) if params.structured else {})
    unknown = sorted(set(params.exclude_nodes) - set(graph.labels.values()))
    if unknown:
        raise RecipeError(f"prune: exclude_nodes names no node of the model: {', '.join(unknown)}")
    candidates, skipped = [], []
    for node in graph.nodes:
        label = graph.label(node)
        weight = graph.initializers.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type not in params.op_types or node.domain not in ("", "ai.onnx") or weight is None:
            continue  # a MatMul of two activations (e.g. attention scores) has no weight to prune
        if label in params.exclude_nodes:
            skipped.append(f"{label}: excluded")
        elif weight.data_type != TensorProto.FLOAT:
            skipped.append(f"{label}: weight is {TensorProto.DataType.Name(weight.data_type).lower()}, "
                           "only float32 is pruned")
        else:
            candidates.append(node)
    prune_layers = _prune_structured if params.structured else _prune_unstructured
    layers, removed, total = prune_layers(graph, candidates, params, skipped)
    if not layers:
        why = f"no {'/'.join(params.op_types)} with a float32 initializer weight" if not candidates else ""
        why += f" ({_listed(skipped, '; ')})" if why and skipped else _listed(skipped, "; ")
        raise RecipeNotApplicable(f"prune: nothing to prune: {why}")
    for tensor in proto.graph.initializer:
        if tensor.name in graph.changed:
            tensor.CopyFrom(numpy_helper.from_array(graph.changed[tensor.name], tensor.name))
    if params.structured:  # channel counts changed: stale shapes would make the model fail to load
        del proto.graph.value_info[:]
        try:
            proto.graph.value_info.extend(_inferred(proto, strict=True).value_info)
        except Exception as exc:
            raise RecipeError(f"prune: the pruned model fails shape inference: {exc}") from exc
    path = artifact_path(model, "prune", context)
    try:
        save_model(proto, path)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise RecipeError(f"prune: the pruned model does not pass the ONNX checker: {exc}") from exc
    except OSError as exc:
        raise RecipeError(f"prune: cannot write {path}: {exc}") from exc
    notes = {"mode": "structured (output channels)" if params.structured else "unstructured",
             "sparsity": f"{removed / total:.3f} of {total:,} {'channels' if params.structured else 'weights'}",
             "parameters": f"{before:,} -> {_parameter_count(proto):,}",
             "layers": _listed(layers)}
    if skipped:
        notes["skipped"] = _listed(skipped, "; ")
    if not params.structured:
        notes["storage"] = DENSE_ZEROS
    if folded:
        notes["constants"] = folded_note(folded, "pruned")
    return Artifact(path, "prune", notes=notes)
