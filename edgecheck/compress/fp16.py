"""FP16 recipe: weights and compute in float16 through ONNX Runtime's float16 converter.

Inputs and outputs stay float32 by default (Cast nodes at the edges), so the artifact is a drop-in
replacement and parity compares like with like. ONNX Runtime's converter (onnxruntime.transformers.
float16) is used rather than onnxconverter-common's: it keeps the inputs that must stay float32 so
(Resize's scales), turns a graph's `Cast(to=float)` into float16 with the rest, and keeps its default
block list of ops without float16 kernels in float32. On top of it, the nodes that only compute shapes
(Shape -> Cast -> Mul -> Resize scales, a Reshape's target, a Range's bounds) stay float32: in float16
a size over 2048 is no longer exact, and onnxconverter-common's converter left such graphs with a Cast
whose type ONNX Runtime refuses. Weights outside float16's range are clamped by the converter; the
recipe counts them so the report says so instead of hiding it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pydantic import Field

from edgecheck.compress import (Artifact, RecipeContext, RecipeParams, artifact_path, load_model_for_editing,
                                register_recipe, save_model, tool_message)
from edgecheck.errors import RecipeError

FP16_MAX = 65504.0
FP16_MIN_POSITIVE = 1e-7  # the converter's default: smaller magnitudes are raised to this


class Fp16Params(RecipeParams):
    keep_io_types: bool = Field(True, description="Keep float32 inputs and outputs (Casts at the edges).")
    keep_op_types: tuple[str, ...] | None = Field(
        None, description="Op types left in float32; default: ONNX Runtime's list of ops without "
        "float16 kernels (Range, NonMaxSuppression, TopK, ...)."
    )
    keep_nodes: tuple[str, ...] = Field((), description="Node names left in float32.")
    keep_shape_nodes: bool = Field(True, description="Leave the nodes that only compute shapes (sizes, scales, "
                                   "Reshape targets) in float32.")


# op type -> its inputs that are shapes, sizes, scales, axes or bounds rather than data
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "ConstantOfShape": (0,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 3),
    "Resize": (1, 2, 3), "Upsample": (1,), "Range": (0, 1, 2), "TopK": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "Split": (1,), "OneHot": (1,), "CumSum": (1,), "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,),
    "ReduceMin": (1,), "ReduceProd": (1,), "ReduceL2": (1,), "RandomNormalLike": (), "EyeLike": (),
}
_SHAPE_SOURCES = {"Shape", "Size"}  # their outputs are int64 whatever they read: blocking them would cast the data


def shape_nodes(graph) -> list:
    """The nodes of the main graph whose every output is read only as a shape, size, scale or bound
    (directly or through other such nodes): the arithmetic of shapes, which must stay exact."""
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[tuple[object, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, index))
        for attribute in node.attribute:  # a subgraph's reads count as data
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                for inner in sub.node:
                    for name in inner.input:
                        readers.setdefault(name, []).append((node, -1))
    found: set[int] = set()
    changed = True
    while changed:
        changed = False
        for node in reversed(graph.node):
            if id(node) in found or node.op_type in _SHAPE_SOURCES or not node.output:
                continue
            uses = [use for o in node.output if o for use in readers.get(o, [])]
            if not uses or any(o in outputs for o in node.output):
                continue
            if all(index in SHAPE_INPUTS.get(reader.op_type, ()) or id(reader) in found for reader, index in uses):
                found.add(id(node))
                changed = True
    return [node for node in graph.node if id(node) in found]


def _out_of_range(model) -> tuple[int, int]:
    """Float32 weights float16 cannot hold: (too large, too small but not zero)."""
    from onnx import TensorProto, numpy_helper

    large = small = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != TensorProto.FLOAT:
            continue
        values = np.abs(numpy_helper.to_array(tensor))
        large += int((values > FP16_MAX).sum())
        small += int(((values > 0) & (values < FP16_MIN_POSITIVE)).sum())
    return large, small


@register_recipe("fp16", Fp16Params, tools=("onnx", "onnxruntime"), version=2)
def compress_fp16(model: Path, params: Fp16Params, context: RecipeContext) -> Artifact:
    """Weights and compute in float16; inputs and outputs kept float32 unless asked."""
    import logging

    from edgecheck.compress.verify import topological_sort

    try:  # (the package appends its folder to sys.path, and its modules and ONNX Runtime's quantizer rely on it)
        from onnxruntime.transformers import float16
    except ImportError as exc:  # a dependency of edgecheck: only a broken install gets here
        raise RecipeError(f"fp16 needs onnxruntime's float16 converter (onnxruntime.transformers): {exc}") from None
    source = load_model_for_editing(model)
    names = {n.name for n in source.graph.node}
    missing = [n for n in params.keep_nodes if n not in names]
    if missing:
        raise RecipeError(f"fp16: keep_nodes: no node named {', '.join(map(repr, missing))}")
    shapes = shape_nodes(source.graph) if params.keep_shape_nodes else []
    taken = set(names)
    for number, node in enumerate(shapes):
        if not node.name:  # the converter keeps nodes by name
            name = f"{node.op_type}_shape_{number}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    large, small = _out_of_range(source)
    try:
        with warnings.catch_warnings():  # one warning per clamped value; the notes count them instead
            warnings.filterwarnings("ignore", category=UserWarning)
            logging.getLogger("onnxruntime.transformers.float16").setLevel(logging.ERROR)
            converted = float16.convert_float_to_float16(
                source, keep_io_types=params.keep_io_types, disable_shape_infer=False,
                min_positive_val=FP16_MIN_POSITIVE, max_finite_val=FP16_MAX,
                op_block_list=list(params.keep_op_types) if params.keep_op_types is not None else None,
                node_block_list=[*params.keep_nodes, *(n.name for n in shapes)] or None,
            )
        topological_sort(converted)  # the converter appends its Casts at the end
        round_trips = _drop_round_trips(converted)
        out = save_model(converted, artifact_path(model, "fp16", context))
    except Exception as exc:
        raise RecipeError(f"fp16: onnxruntime.transformers.float16 failed: {tool_message(exc)}") from exc
    float32 = _float32_tensors(converted)
    kept = [n.name or n.op_type for n in converted.graph.node
            if n.op_type != "Cast" and n.name in names and any(i in float32 for i in n.input)]
    notes = {
        "tool": "onnxruntime.transformers.float16.convert_float_to_float16",
        "io": "float32 (Casts at the edges)" if params.keep_io_types else "float16",
        "casts": str(sum(1 for n in converted.graph.node if n.op_type == "Cast")
                     - sum(1 for n in source.graph.node if n.op_type == "Cast")),
    }
    if round_trips:
        notes["round_trips_removed"] = f"{round_trips} float32 -> float16 -> float32 Cast pairs between float32 nodes"
    if shapes:
        listed = [n.name for n in shapes]
        notes["shape_nodes"] = (f"{len(listed)} nodes that compute shapes kept in float32: " + ", ".join(listed[:12])
                                + (f" (+{len(listed) - 12})" if len(listed) > 12 else ""))
    if kept:
        notes["float32_nodes"] = ", ".join(kept[:12]) + (f" (+{len(kept) - 12})" if len(kept) > 12 else "")
    if large or small:
        notes["clamped_weights"] = f"{large} above {FP16_MAX:g}, {small} below {FP16_MIN_POSITIVE:g} in magnitude"
    return Artifact(out, "fp16", notes)


def _drop_round_trips(model) -> int:
    """Remove the Cast pairs float32 -> float16 -> float32 the converter puts between two nodes it
    keeps in float32 (it casts every kept node's inputs and outputs): a value going through them
    loses what float16 cannot hold, which is what keeping the nodes was for. Returns the pairs removed."""
    from onnx import TensorProto, shape_inference

    graph = model.graph
    try:
        typed = shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001  without types no pair is provably a round trip
        return 0
    float32 = {v.name for v in [*typed.value_info, *typed.input] if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    float32 |= {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    producers = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}

    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    renames, removed = {}, set()
    for node in graph.node:
        if cast_to(node) != TensorProto.FLOAT or node.output[0] in outputs:
            continue
        first = producers.get(node.input[0])
        if first is None or cast_to(first) != TensorProto.FLOAT16 or first.input[0] not in float32:
            continue
        renames[node.output[0]] = first.input[0]
        removed.add(id(node))
    if not renames:
        return 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    read = {name for node in graph.node if id(node) not in removed for name in node.input} | outputs
    for node in graph.node:  # a float16 Cast nothing reads any longer goes too
        if cast_to(node) == TensorProto.FLOAT16 and node.output[0] not in read and node.input[0] in float32:
            removed.add(id(node))
    kept = [n for n in graph.node if id(n) not in removed]
    clones = []
    for node in kept:
        clone = type(node)()
        clone.CopyFrom(node)
        clones.append(clone)
    del graph.node[:]
    graph.node.extend(clones)
    return len(renames)


def _float32_tensors(model) -> set[str]:
    """Names of the float32 tensors left after conversion: a node reading one was kept in float32."""
    from onnx import TensorProto

    float32 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    typed = list(model.graph.value_info) + list(model.graph.input)
    return float32 | {v.name for v in typed if v.type.tensor_type.elem_type == TensorProto.FLOAT}
