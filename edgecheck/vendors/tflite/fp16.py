"""Float16 weights behind DEQUANTIZE ops (how MediaPipe ships its .tflite models), made float32 so that
a quantizer sees them.

Such a model keeps each weight as a FLOAT16 constant read through a DEQUANTIZE to float32. ai-edge-
quantizer quantizes float32 constants only: on such a model it changes nothing (same size, same types).
The route is to rewrite a copy first: each DEQUANTIZE of a float16 constant is replaced by a float32
constant holding the same values (float16 → float32 is exact), and the quantizer then quantizes those.
The rewrite works on the flatbuffer with the TFLite schema's object API (no TensorFlow); the user's
file is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOTHING = "nothing to quantize: the weights are float16 behind DEQUANTIZE"


@dataclass(frozen=True)
class Fp16Weights:
    """What a model holds behind DEQUANTIZE ops: its float16 constants, and why they cannot be rewritten
    ('' where they can)."""

    tensors: tuple[str, ...]  # the float16 constants' names
    float16_bytes: int
    obstacle: str = ""


def _load(path: Path):
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    return schema, schema.ModelT.InitFromPackedBuf(data, 0)


def _dequantized_constants(schema, model):
    """(subgraph, op index, float16 tensor, float32 tensor) for each DEQUANTIZE of a float16 constant."""
    dequantize = {i for i, code in enumerate(model.operatorCodes or [])
                  if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE}
    buffers = model.buffers or []
    for subgraph in model.subgraphs or []:
        tensors = subgraph.tensors or []
        for index, op in enumerate(subgraph.operators or []):
            if op.opcodeIndex not in dequantize or len(op.inputs) != 1 or len(op.outputs) != 1:
                continue
            source, target = tensors[op.inputs[0]], tensors[op.outputs[0]]
            buffer = buffers[source.buffer] if 0 < source.buffer < len(buffers) else None
            constant = buffer is not None and (buffer.data is not None and len(buffer.data) or (buffer.offset or 0) > 1)
            if source.type == schema.TensorType.FLOAT16 and target.type == schema.TensorType.FLOAT32 and constant:
                yield subgraph, index, source, target


def _name(tensor) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def find_fp16_weights(path: Path) -> Fp16Weights:
    """The float16 constants behind DEQUANTIZE ops in a .tflite, and what stops their rewrite."""
    schema, model = _load(path)
    found = list(_dequantized_constants(schema, model))
    size = sum(int(np.prod(source.shape if source.shape is not None else [1])) * 2 for _, _, source, _ in found)
    obstacle = ""
    if any((model.buffers[source.buffer].offset or 0) > 1 for _, _, source, _ in found):
        obstacle = ("they are stored outside the flatbuffer (the layout of models over 2 GB), which edgecheck's "
                    "rewrite does not reach")
    elif size * 2 + path.stat().st_size >= 2**31 - 2**20:
        obstacle = "made float32 they would take the model past the 2 GB a flatbuffer can hold"
    return Fp16Weights(tuple(_name(source) for _, _, source, _ in found), size, obstacle)


def dequantize_fp16_weights(path: Path, out: Path) -> int:
    """Write `path` to `out` with each DEQUANTIZE of a float16 constant replaced by a float32 constant of
    the same values; the number of constants rewritten. (Call `find_fp16_weights` first: it says where
    this cannot be done.)"""
    import flatbuffers

    schema, model = _load(path)
    found = list(_dequantized_constants(schema, model))
    removed: dict[int, set[int]] = {}
    for subgraph, index, source, target in found:
        values = np.frombuffer(bytes(model.buffers[source.buffer].data), dtype="<f2").astype("<f4")
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        target.buffer = len(model.buffers) - 1  # the float32 tensor the layer reads is now the constant
        source.buffer = 0  # the float16 one is read by nothing now: no data
        removed.setdefault(id(subgraph), set()).add(index)
    used = {tensor.buffer for subgraph in model.subgraphs for tensor in subgraph.tensors or []}
    for number, buffer in enumerate(model.buffers):
        if number and number not in used and buffer.data is not None:
            buffer.data = None  # the float16 copies: dropped, so the copy does not carry both
    for number, subgraph in enumerate(model.subgraphs):
        gone = removed.get(id(subgraph), set())
        operators = subgraph.operators or []
        subgraph.operators = [op for i, op in enumerate(operators) if i not in gone]
        _drop_unread_tensors(model, number, {int(op.inputs[0]) for i, op in enumerate(operators) if i in gone})
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return len(found)


def _drop_unread_tensors(model, number: int, candidates: set[int]) -> None:
    """Remove the float16 tensors nothing reads any more from subgraph `number`, renumbering every
    reference: left in place they are tensors without data or producer, which tools that read every
    tensor (ai-edge-quantizer's calibrator) refuse ("Tensor data is null")."""
    subgraph = model.subgraphs[number]
    read = {int(i) for op in subgraph.operators or [] for i in [*(op.inputs if op.inputs is not None else []),
                                                                *(op.outputs if op.outputs is not None else [])]}
    read |= {int(i) for i in [*(subgraph.inputs if subgraph.inputs is not None else []),
                               *(subgraph.outputs if subgraph.outputs is not None else [])]}
    signatures = [sig for sig in model.signatureDefs or [] if sig.subgraphIndex == number]
    read |= {int(m.tensorIndex) for sig in signatures for m in [*(sig.inputs or []), *(sig.outputs or [])]}
    drop = {i for i in candidates if i not in read}
    if not drop:
        return
    renumber, kept = {}, []
    for old, tensor in enumerate(subgraph.tensors):
        if old not in drop:
            renumber[old] = len(kept)
            kept.append(tensor)
    subgraph.tensors = kept

    def moved(indices):
        return None if indices is None else [renumber[int(i)] if int(i) >= 0 else int(i) for i in indices]

    for op in subgraph.operators or []:
        op.inputs, op.outputs = moved(op.inputs), moved(op.outputs)
        if getattr(op, "intermediates", None) is not None:
            op.intermediates = moved(op.intermediates)
    subgraph.inputs, subgraph.outputs = moved(subgraph.inputs), moved(subgraph.outputs)
    for sig in signatures:
        for entry in [*(sig.inputs or []), *(sig.outputs or [])]:
            entry.tensorIndex = renumber[int(entry.tensorIndex)]


def float32_weights(model: Path, recipe: str, scratch: Path) -> tuple[Path, str]:
    """The model the quantizer gets: `model`, or where its weights are float16 behind DEQUANTIZE ops
    (which ai-edge-quantizer leaves as they are), a copy with them made float32; and a note of that."""
    from edgecheck.compress import RecipeNotApplicable

    found = find_fp16_weights(model)
    if not found.tensors:
        return model, ""
    if found.obstacle:
        raise RecipeNotApplicable(f"recipe {recipe!r} on {model.name}: {NOTHING} ({len(found.tensors)} tensors, "
                                  f"e.g. {found.tensors[0]!r}); edgecheck cannot make them float32 first: "
                                  f"{found.obstacle}")
    copy = scratch / model.name
    count = dequantize_fp16_weights(model, copy)
    return copy, (f", after its {count} float16 weights behind DEQUANTIZE ops were made float32 (exact) so that "
                  "they could be quantized")


def weight_types(path: Path) -> dict[str, int]:
    """How many constant tensors (with data) of each type a .tflite holds: what a quantizer changed."""
    schema, model = _load(path)
    names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    counts: dict[str, int] = {}
    buffers = model.buffers or []
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            buffer = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
            if buffer is not None and ((buffer.data is not None and len(buffer.data)) or (buffer.offset or 0) > 1):
                key = names.get(tensor.type, str(tensor.type)).lower()
                counts[key] = counts.get(key, 0) + 1
    return counts
