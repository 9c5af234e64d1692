"""What a recipe really did, read from the files: its input and its artifact compared.

A recipe's own notes say what it meant to do; these facts say what the artifact shows — the weight
tensors by type (count and bytes) before and after, the operators added and removed, the file's
bytes — for ONNX (initializers and Constant-node tensors, in subgraphs too) and .tflite (constant
tensors, through the TFLite schema reader). An artifact with the same weights (types and values)
and the same operators as its input is a recipe that changed nothing: `RecipeNotApplicable`, a skip
with the reason (failed under --edge-strict), never a pass.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgecheck.compress import RecipeNotApplicable

# moving a Constant node's tensor into an initializer (or dropping an Identity) changes no weight
_BOOKKEEPING_OPS = {"Constant", "Identity"}
_QUANTIZERS = ("int8", "quant", "uint8")
_LAYERS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D",
           "BATCH_MATMUL", "TRANSPOSE_CONV"}


@dataclass
class WeightFacts:
    """Constant tensors by type: how many, how many bytes, and their contents (for 'unchanged')."""

    by_dtype: Counter = field(default_factory=Counter)  # dtype -> tensors
    bytes_by_dtype: Counter = field(default_factory=Counter)  # dtype -> bytes
    contents: Counter = field(default_factory=Counter)  # (dtype, shape, sha256) -> tensors

    def add(self, dtype: str, shape: tuple[int, ...], data: bytes) -> None:
        self.add_digest(dtype, shape, hashlib.sha256(data).hexdigest(), len(data))

    def add_digest(self, dtype: str, shape: tuple[int, ...], sha256: str, nbytes: int) -> None:
        self.by_dtype[dtype] += 1
        self.bytes_by_dtype[dtype] += nbytes
        self.contents[(dtype, shape, sha256)] += 1

    def text(self) -> str:
        if not self.by_dtype:
            return "none"
        return ", ".join(f"{dtype} {count} ({_bytes(self.bytes_by_dtype[dtype])})"
                         for dtype, count in sorted(self.by_dtype.items(), key=lambda kv: -self.bytes_by_dtype[kv[0]]))


@dataclass
class ModelFacts:
    format: str
    size_bytes: int
    weights: WeightFacts
    ops: Counter
    float16_behind_dequantize: int = 0  # float16 constants a DEQUANTIZE turns into float32 (a .tflite's)
    knows_weights: bool = True  # False: a format that cannot list its constants (a compiled file): size alone


def _bytes(count: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count} B"


def model_facts(path: Path) -> ModelFacts:
    """The facts of an .onnx file, or of a file whose format lists its constants (a .tflite); other
    formats (a compiled file) give their size alone."""
    from edgecheck.formats import format_of

    if path.suffix == ".onnx":
        return _onnx_facts(path)
    found = format_of(path)
    listed = found.weights(path) if found.name != "onnx" else None
    if listed is None:
        return ModelFacts(path.suffix.lstrip(".") or "?", path.stat().st_size, WeightFacts(), Counter(),
                          knows_weights=False)
    weights = WeightFacts()
    for constant in listed.constants:
        weights.add_digest(constant.dtype, constant.shape, constant.sha256, constant.nbytes)
    behind = sum(constant.behind_dequantize for constant in listed.constants)
    return ModelFacts(found.name, listed.size_bytes, weights, Counter(listed.op_counts), behind)


def _onnx_facts(path: Path) -> ModelFacts:
    import onnx
    from onnx import helper, numpy_helper

    from edgecheck.analysis.constants import constant_tensor
    from edgecheck.model import _check_external_data, _external_files

    model = onnx.load(str(path), load_external_data=False)
    _check_external_data(model, path)  # beside the model only
    external = sorted({(path.parent / location).resolve() for location in _external_files(model)})
    if external:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(path.parent))
    weights, ops = WeightFacts(), Counter()

    def dtype_name(code: int) -> str:
        try:
            return helper.tensor_dtype_to_np_dtype(code).name
        except (KeyError, TypeError, ValueError):
            return onnx.TensorProto.DataType.Name(code).lower() if code in onnx.TensorProto.DataType.values() else str(code)

    def add(tensor) -> None:
        array = numpy_helper.to_array(tensor)
        weights.add(dtype_name(tensor.data_type), tuple(array.shape), array.tobytes())

    def walk(graph) -> None:
        for tensor in graph.initializer:
            add(tensor)
        for node in graph.node:
            ops[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"] += 1
            held = constant_tensor(node)
            if held is not None:
                add(held)
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    walk(sub)

    walk(model.graph)
    size = path.stat().st_size + sum(p.stat().st_size for p in external)
    return ModelFacts("onnx", size, weights, ops)


def _ops_delta(before: Counter, after: Counter) -> str:
    added = [f"+{op} {after[op] - before[op]}" for op in sorted(after) if after[op] > before[op]]
    removed = [f"-{op} {before[op] - after[op]}" for op in sorted(before) if before[op] > after[op]]
    return ", ".join(added + removed) or "none"


def _quantizing(op: str) -> bool:
    return any(word in op.upper() for word in ("QUANTIZE", "INTEGER", "QLINEAR", "QGEMM"))


def _unchanged(recipe: str, source: ModelFacts, artifact: ModelFacts) -> bool:
    """Same weights (types and values) and the same operators; for a quantizer, same weights and no
    quantizing operator added (ONNX Runtime's splits an excluded Gemm into MatMul + Add, say)."""
    if source.format != artifact.format or not source.knows_weights:
        return False
    if source.weights.contents != artifact.weights.contents:
        return False
    ops = [Counter({k: v for k, v in f.ops.items() if k not in _BOOKKEEPING_OPS}) for f in (source, artifact)]
    if ops[0] == ops[1]:
        return True
    added = [op for op in ops[1] if ops[1][op] > ops[0][op]]
    return any(word in recipe for word in _QUANTIZERS) and not any(map(_quantizing, added))


def _why_unchanged(recipe: str, source: ModelFacts) -> str:
    weights = source.weights.by_dtype
    if source.float16_behind_dequantize:
        return (f"nothing to quantize: the weights are float16 behind DEQUANTIZE ({source.float16_behind_dequantize} "
                "DEQUANTIZE ops), which the quantizer leaves as they are")
    if not weights.get("float32"):
        return f"the input has no float32 weights (its weights: {source.weights.text()})"
    if any(word in recipe for word in _QUANTIZERS):
        layers = sorted(op for op in source.ops if op in _LAYERS)
        if layers:
            return (f"its {'/'.join(layers)} layers all stayed float (left out by the recipe's parameters, or "
                    "weights the quantizer does not take)")
        return "no MatMul/Gemm/Conv with float weights to quantize"
    return "no weight and no operator differs from the input's"


def describe_change(recipe: str, source: Path, artifact: Path) -> dict[str, str]:
    """Notes of what the artifact shows the recipe did; `RecipeNotApplicable` where it changed nothing."""
    try:
        before, after = model_facts(source), model_facts(artifact)
    except Exception as exc:  # noqa: BLE001  the comparison is a report: it never costs the artifact
        return {"changed": f"not compared ({type(exc).__name__}: {exc})"}
    if _unchanged(recipe, before, after):
        raise RecipeNotApplicable(
            f"{recipe} changed nothing: {_why_unchanged(recipe, before)}; its artifact has the same weights "
            f"({before.weights.text()}) and operators as its input, so there is nothing to check")
    ratio = before.size_bytes / after.size_bytes if after.size_bytes else float("inf")
    notes = {"changed.bytes": f"{before.size_bytes:,} -> {after.size_bytes:,} ({ratio:.2f}x smaller)" if ratio >= 1
             else f"{before.size_bytes:,} -> {after.size_bytes:,} ({1 / ratio:.2f}x larger)"}
    if before.format == after.format:
        notes["changed.weights"] = f"{before.weights.text()} -> {after.weights.text()}"
        notes["changed.ops"] = _ops_delta(before.ops, after.ops)
        new = sum((after.weights.contents - before.weights.contents).values())
        notes["changed.tensors"] = f"{new} of {sum(after.weights.contents.values())} weight tensors not in the input"
    else:
        notes["changed.format"] = f"{before.format} -> {after.format}"
        notes["changed.weights"] = after.weights.text()
    return notes
