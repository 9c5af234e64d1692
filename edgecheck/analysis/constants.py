"""Weights held in Constant nodes (how Paddle and some other exporters write them).

ONNX Runtime's quantizer, and edgecheck's pruning and low-rank recipes, find a layer's weight among
the graph's initializers; a weight that arrives through a `Constant` node (or `Constant -> Identity`)
is invisible to them and stays float, silently. `fold_weight_constants` turns the Constant nodes
that feed a layer's weights into initializers of the same graph (a copy being edited: the user's
file is never touched), so the recipes see them, and says which it folded.
"""

from __future__ import annotations

from typing import Any

# op type -> the inputs that hold its weights (and bias)
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "MatMul": (0, 1), "Gemm": (0, 1, 2), "Conv": (1, 2), "ConvTranspose": (1, 2), "Gather": (0,),
    "LSTM": (1, 2, 3), "GRU": (1, 2, 3), "RNN": (1, 2, 3),
}


def constant_tensor(node: Any) -> Any | None:
    """The tensor a Constant node holds (a TensorProto named as its output); None for sparse or
    string constants, which no recipe edits."""
    from onnx import TensorProto, helper, numpy_helper

    import numpy as np

    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.t.data_type not in (0, TensorProto.STRING):
            tensor = TensorProto()
            tensor.CopyFrom(attribute.t)
            tensor.name = node.output[0]
            return tensor
        values = helper.get_attribute_value(attribute)
        if attribute.name in ("value_float", "value_floats"):
            return numpy_helper.from_array(np.asarray(values, np.float32), node.output[0])
        if attribute.name in ("value_int", "value_ints"):
            return numpy_helper.from_array(np.asarray(values, np.int64), node.output[0])
    return None


def fold_weight_constants(model: Any) -> list[str]:
    """Turn the Constant nodes that feed layer weights (directly or through Identity nodes) into
    initializers, in the main graph and in subgraphs; returns the folded tensors' names."""
    if model.ir_version < 4:  # before IR 4 an initializer must also be a graph input
        return []
    return _fold(model.graph, model)


def _fold(graph: Any, model: Any) -> list[str]:
    producers = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    wanted: set[int] = set()  # id() of Constant nodes to fold
    bypass: dict[str, str] = {}  # Identity output -> the name it copies
    for node in graph.node:
        for index in WEIGHT_INPUTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ():
            if index >= len(node.input) or not node.input[index]:
                continue
            name, chain = node.input[index], []
            while name in producers and producers[name].op_type == "Identity" and name not in outputs:
                chain.append(name)
                name = producers[name].input[0]
            source = producers.get(name)
            if source is not None and constant_tensor(source) is not None:
                wanted.add(id(source))
                bypass.update({link: name for link in chain})
    folded: list[str] = []
    kept = []
    for node in graph.node:
        if id(node) in wanted:
            graph.initializer.add().CopyFrom(constant_tensor(node))
            folded.append(node.output[0])
        elif node.op_type == "Identity" and node.output and node.output[0] in bypass:
            continue  # its readers read the folded weight itself (an Identity between hides it from the tools)
        else:
            kept.append(_copy(node))
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
        _rename_inputs(graph, {link: _resolve(link, bypass) for link in bypass})
        stale = [v for v in graph.value_info if v.name not in bypass]
        del graph.value_info[:]
        graph.value_info.extend(stale)
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                folded += _fold(sub, model)
    return folded


def _copy(node: Any) -> Any:
    from onnx import NodeProto

    clone = NodeProto()
    clone.CopyFrom(node)
    return clone


def _resolve(name: str, bypass: dict[str, str]) -> str:
    while name in bypass:
        name = bypass[name]
    return name


def _rename_inputs(graph: Any, renames: dict[str, str]) -> None:
    """Readers of a removed Identity's output read its source instead, in subgraphs too (outer scope)."""
    if not renames:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                _rename_inputs(sub, renames)


def folded_note(folded: list[str], verb: str) -> str:
    """The recipe note that says which Constant-node weights were folded, and why."""
    listed = ", ".join(folded[:8]) + (f" (+{len(folded) - 8})" if len(folded) > 8 else "")
    return f"{len(folded)} weights held in Constant nodes folded into initializers so they could be {verb}: {listed}"
