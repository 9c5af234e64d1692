"""INT8 recipes through ONNX Runtime's quantizer (onnxruntime.quantization).

`int8-dynamic` quantizes weights and computes activation scales at run time; `int8-static`
inserts QDQ pairs with activation ranges calibrated on the spec's calibration data (MinMax, per
tensor). Parameters (per-channel, calibration method, nodes kept in float) come with the
compression recipes' own issue; these defaults are the common first try.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecheck.compress import Artifact, RecipeContext, register_recipe
from edgecheck.errors import RecipeError

MAX_CALIBRATION_SAMPLES = 512


def _count_ops(path: Path, names: set[str]) -> int:
    import onnx

    return sum(1 for node in onnx.load(str(path), load_external_data=False).graph.node if node.op_type in names)


@register_recipe("int8-dynamic")
def compress_int8_dynamic(model: Path, context: RecipeContext) -> Artifact:
    """Weights to INT8; activations quantized on the fly (no calibration data needed)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = context.work_dir() / f"{model.stem}.int8-dynamic.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantize_dynamic(str(model), str(out), weight_type=QuantType.QInt8)
    except Exception as exc:
        raise RecipeError(f"int8-dynamic: onnxruntime.quantization.quantize_dynamic failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    quantized = _count_ops(out, {"MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QLinearMatMul"})
    return Artifact(out, "int8-dynamic", {"tool": "onnxruntime.quantization.quantize_dynamic",
                                          "weights": "int8", "integer_ops": str(quantized)})


class _NpzReader:
    """Feeds calibration samples one at a time, in file order, so the result is deterministic."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        count = min(len(a) for a in arrays.values())
        self._feeds = iter([{k: v[i:i + 1] for k, v in arrays.items()} for i in range(count)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _calibration_arrays(model: Path, calibration: Path) -> dict[str, np.ndarray]:
    from edgecheck.data import columns_for, load_npz
    from edgecheck.errors import DataError
    from edgecheck.model import inspect_onnx

    info = inspect_onnx(model)
    try:
        columns = columns_for(info, load_npz(calibration), calibration)
    except DataError as exc:
        raise RecipeError(f"int8-static: calibration data: {exc}") from None
    dtypes = {t.name: t.dtype for t in info.inputs}
    return {name: column[:MAX_CALIBRATION_SAMPLES].astype(dtypes[name], copy=False) for name, column in columns.items()}


@register_recipe("int8-static")
def compress_int8_static(model: Path, context: RecipeContext) -> Artifact:
    """QDQ INT8 with activation ranges from the spec's calibration data (MinMax, per tensor)."""
    if context.calibration is None:
        raise RecipeError("int8-static needs calibration data: set data.calibration in the spec")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    arrays = _calibration_arrays(model, context.calibration)
    out = context.work_dir() / f"{model.stem}.int8-static.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantize_static(
            str(model), str(out), _NpzReader(arrays),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            per_channel=False, calibrate_method=CalibrationMethod.MinMax,
        )
    except Exception as exc:
        raise RecipeError(f"int8-static: onnxruntime.quantization.quantize_static failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    samples = len(next(iter(arrays.values())))
    return Artifact(out, "int8-static", {
        "tool": "onnxruntime.quantization.quantize_static (QDQ, MinMax, per-tensor)",
        "calibration": f"{context.calibration.name} ({samples} samples)",
        "quantize_nodes": str(_count_ops(out, {"QuantizeLinear"})),
    })
