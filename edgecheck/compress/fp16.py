"""FP16 recipe: weights and compute in float16 through onnxconverter-common.

Inputs and outputs stay float32 by default (Cast nodes at the edges), so the artifact is a drop-in
replacement and parity compares like with like. Weights outside float16's range are clamped by the
converter; the recipe counts them so the report says so instead of hiding it.
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
        None, description="Op types left in float32; default: onnxconverter-common's list of ops without "
        "float16 kernels (Resize, Range, NonMaxSuppression, ...)."
    )
    keep_nodes: tuple[str, ...] = Field((), description="Node names left in float32.")


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


@register_recipe("fp16", Fp16Params, tools=("onnx", "onnxconverter-common"))
def compress_fp16(model: Path, params: Fp16Params, context: RecipeContext) -> Artifact:
    """Weights and compute in float16; inputs and outputs kept float32 unless asked."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:  # a dependency of edgecheck: only a broken install gets here
        raise RecipeError(f"fp16 needs onnxconverter-common: {exc}") from None
    source = load_model_for_editing(model)
    names = {n.name for n in source.graph.node}
    missing = [n for n in params.keep_nodes if n not in names]
    if missing:
        raise RecipeError(f"fp16: keep_nodes: no node named {', '.join(map(repr, missing))}")
    large, small = _out_of_range(source)
    try:
        with warnings.catch_warnings():  # one warning per clamped value; the notes count them instead
            warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
            converted = float16.convert_float_to_float16(
                source, keep_io_types=params.keep_io_types, disable_shape_infer=False,
                min_positive_val=FP16_MIN_POSITIVE, max_finite_val=FP16_MAX,  # its default max is 1e4, not 65504
                op_block_list=list(params.keep_op_types) if params.keep_op_types is not None else None,
                node_block_list=list(params.keep_nodes) or None,
            )
        out = save_model(converted, artifact_path(model, "fp16", context))
    except Exception as exc:
        raise RecipeError(f"fp16: onnxconverter_common.float16 failed: {tool_message(exc)}") from exc
    float32 = _float32_tensors(converted)
    kept = [n.name or n.op_type for n in converted.graph.node
            if n.op_type != "Cast" and n.name in names and any(i in float32 for i in n.input)]
    notes = {
        "tool": "onnxconverter_common.float16.convert_float_to_float16",
        "io": "float32 (Casts at the edges)" if params.keep_io_types else "float16",
        "casts": str(sum(1 for n in converted.graph.node if n.op_type == "Cast")
                     - sum(1 for n in source.graph.node if n.op_type == "Cast")),
    }
    if kept:
        notes["float32_nodes"] = ", ".join(kept[:12]) + (f" (+{len(kept) - 12})" if len(kept) > 12 else "")
    if large or small:
        notes["clamped_weights"] = f"{large} above {FP16_MAX:g}, {small} below {FP16_MIN_POSITIVE:g} in magnitude"
    return Artifact(out, "fp16", notes)


def _float32_tensors(model) -> set[str]:
    """Names of the float32 tensors left after conversion: a node reading one was kept in float32."""
    from onnx import TensorProto

    float32 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    typed = list(model.graph.value_info) + list(model.graph.input)
    return float32 | {v.name for v in typed if v.type.tensor_type.elem_type == TensorProto.FLOAT}
