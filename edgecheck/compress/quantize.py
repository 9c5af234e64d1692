"""INT8 recipes through ONNX Runtime's quantizer (onnxruntime.quantization).

`int8-dynamic` stores weights in INT8 and quantizes activations at run time; `int8-static` inserts
QDQ pairs whose activation ranges are calibrated on the spec's calibration data. Both are
deterministic (same model, data and parameters give the same bytes), which the cache relies on.
INT8 is not always faster: on CPUs without VNNI a QDQ or ConvInteger model can run slower than
FP32 — benchmarks/bench_recipes.py measures it; nothing here assumes a speed-up.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgecheck.compress import (Artifact, RecipeContext, RecipeParams, artifact_path, copy_model,
                                load_model_for_editing, register_recipe, tool_message)
from edgecheck.errors import EdgecheckError, RecipeError

PER_CHANNEL_MIN_OPSET = 13  # DequantizeLinear's `axis` attribute arrived in opset 13
_QDQ = {"QuantizeLinear", "DequantizeLinear"}


class Int8DynamicParams(RecipeParams):
    per_channel: bool = Field(False, description="One scale per output channel of each weight.")
    weights: Literal["int8", "uint8"] = Field("int8", description="Integer type of the weights.")
    exclude_nodes: tuple[str, ...] = Field((), description="Node names left in float.")
    exclude_op_types: tuple[str, ...] = Field((), description="Op types left in float, e.g. [Conv].")


class Int8StaticParams(Int8DynamicParams):
    method: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="Calibration method.")
    percentile: float = Field(99.999, gt=50, le=100, description="Kept range for method: percentile.")
    samples: int | None = Field(None, ge=1, description="Calibrate on the first N samples; default: all.")
    activations: Literal["int8", "uint8"] = Field("int8", description="Integer type of the activations.")
    preprocess: bool = Field(False, description="Run onnxruntime's quant_pre_process (shape inference, "
                             "graph optimisation) first, as ONNX Runtime recommends.")

    @model_validator(mode="after")
    def _percentile_needs_method(self) -> Int8StaticParams:
        if "percentile" in self.model_fields_set and self.method != "percentile":
            raise ValueError("percentile applies only with method: percentile")
        return self


def _quant_type(name: str):  # -> onnxruntime.quantization.QuantType
    from onnxruntime.quantization import QuantType

    return QuantType.QInt8 if name == "int8" else QuantType.QUInt8


def _selection(model, params: Int8DynamicParams, recipe: str) -> tuple[list[str], list[str] | None]:
    """Nodes to exclude and op types to quantize; a name that matches nothing is an error, not a no-op."""
    names = [n.name for n in model.graph.node]
    missing = [n for n in params.exclude_nodes if n not in names]
    if missing:
        raise RecipeError(f"{recipe}: exclude_nodes: no node named {', '.join(map(repr, missing))} "
                          f"(nodes: {', '.join(n for n in names if n) or 'none have names'})")
    present = sorted({n.op_type for n in model.graph.node} - _QDQ)
    unknown = [t for t in params.exclude_op_types if t not in present]
    if unknown:
        raise RecipeError(f"{recipe}: exclude_op_types: the model has no {', '.join(map(repr, unknown))} nodes "
                          f"(op types: {', '.join(present)})")
    op_types = [t for t in present if t not in params.exclude_op_types] if params.exclude_op_types else None
    return list(params.exclude_nodes), op_types


_INTEGER_OPS = {"MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul"}


def _quantized_summary(original: Path, quantized: Path) -> dict[str, str]:
    """Which of the original's nodes run in INT8 and which stayed float: what a user checks after
    excluding a layer. A node is INT8 if what replaced it (same name, or `<name>_...` as the dynamic
    quantizer names its pieces) is an integer op, or reads only dequantized (INT8) inputs in QDQ."""
    import onnx

    before = [n for n in onnx.load(str(original), load_external_data=False).graph.node if n.op_type not in _QDQ]
    graph = onnx.load(str(quantized), load_external_data=False).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    floats, removed = [], []
    for node in before:
        if node.name:
            related = [n for n in graph.node if n.name == node.name or n.name.startswith(node.name + "_")]
        else:
            related = [n for n in graph.node if set(n.output) & set(node.output)]
        related = [n for n in related if n.op_type not in _QDQ]
        if not related:  # fused into a neighbour, or removed by pre-processing
            removed.append(node.name or node.op_type)
        elif not any(n.op_type in _INTEGER_OPS or (n.op_type == node.op_type
                                                  and all(i in dequantized for i in n.input if i)) for n in related):
            floats.append(node.name or node.op_type)
    notes = {"quantized_nodes": f"{len(before) - len(floats) - len(removed)} of {len(before)}"}
    if removed:
        notes["fused_or_removed_nodes"] = ", ".join(removed[:12]) + (f" (+{len(removed) - 12})" if len(removed) > 12 else "")
    if floats:
        notes["float_nodes"] = ", ".join(floats[:12]) + (f" (+{len(floats) - 12})" if len(floats) > 12 else "")
    return notes


@contextlib.contextmanager
def _quantizer_input(model_path: Path, params: Int8DynamicParams, recipe: str,
                     context: RecipeContext) -> Iterator[tuple[Path, dict]]:
    """The model to hand ONNX Runtime's quantizer, in a scratch folder removed afterwards, and notes.
    Never the user's file: the quantizer writes `<model>-inferred.onnx` beside its input. The folder is
    inside the step's output folder, which the next session sweeps if this worker is killed."""
    with tempfile.TemporaryDirectory(prefix="quantize-", dir=context.out_dir) as scratch:
        yield _prepare(model_path, params, Path(scratch), recipe)


def _prepare(model_path: Path, params: Int8DynamicParams, folder: Path, recipe: str) -> tuple[Path, dict]:
    """The model to quantize (in `folder`) and notes: weights held in Constant nodes folded into
    initializers (the quantizer sees only those), and the opset upgraded where per-channel needs it."""
    import onnx

    from edgecheck.analysis.constants import fold_weight_constants, folded_note

    model = load_model_for_editing(model_path)
    notes: dict[str, str] = {}
    folded = fold_weight_constants(model)
    if folded:
        notes["constants"] = folded_note(folded, "quantized")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if params.per_channel and opset < PER_CHANNEL_MIN_OPSET:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, PER_CHANNEL_MIN_OPSET)
            onnx.checker.check_model(model)
        except Exception as exc:
            raise RecipeError(
                f"{recipe}: per_channel needs opset >= {PER_CHANNEL_MIN_OPSET} (DequantizeLinear's axis); the model "
                f"is opset {opset} and onnx's version converter could not upgrade it: {tool_message(exc)}. "
                "Export the model at opset 13 or later, or set per_channel: false."
            ) from None
        notes["opset"] = f"{opset} -> {PER_CHANNEL_MIN_OPSET} (per-channel DequantizeLinear needs axis)"
    if not notes:
        return copy_model(model_path, folder), notes
    prepared = folder / "prepared.onnx"
    onnx.save_model(model, str(prepared))
    return prepared, notes


def _fail(recipe: str, tool: str, exc: Exception) -> RecipeError:
    if isinstance(exc, EdgecheckError):
        return RecipeError(f"{recipe}: {exc}")
    return RecipeError(f"{recipe}: {tool} failed: {tool_message(exc)}")


@register_recipe("int8-dynamic", Int8DynamicParams, tools=("onnx", "onnxruntime"))
def compress_int8_dynamic(model: Path, params: Int8DynamicParams, context: RecipeContext) -> Artifact:
    """INT8 weights, activations quantized on the fly (no calibration data needed)."""
    from onnxruntime.quantization import quantize_dynamic

    out = artifact_path(model, "int8-dynamic", context)
    with _quantizer_input(model, params, "int8-dynamic", context) as (source, notes):
        float_model = load_model_for_editing(source)
        exclude, op_types = _selection(float_model, params, "int8-dynamic")
        # the dynamic quantizer splits a Gemm into `<name>_MatMul` + `<name>_Add` before it excludes by name
        exclude += [f"{n.name}_MatMul" for n in float_model.graph.node if n.op_type == "Gemm" and n.name in exclude]
        try:
            quantize_dynamic(str(source), str(out), weight_type=_quant_type(params.weights),
                             per_channel=params.per_channel, nodes_to_exclude=exclude, op_types_to_quantize=op_types)
            summary = _quantized_summary(source, out)
        except Exception as exc:
            raise _fail("int8-dynamic", "onnxruntime.quantization.quantize_dynamic", exc) from exc
    per = "per-channel" if params.per_channel else "per-tensor"
    return Artifact(out, "int8-dynamic", {"tool": f"onnxruntime.quantization.quantize_dynamic ({params.weights} "
                                          f"weights, {per})", **notes, **summary})


class _FeedReader:
    """onnxruntime's CalibrationDataReader over prepared feeds, in file order (deterministic)."""

    def __init__(self, feeds):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


_CALIBRATOR_LOCK = threading.Lock()  # one override at a time in a process (a library user may quantize in threads)


@contextlib.contextmanager
def calibration_threads(threads: int | None) -> Iterator[None]:
    """ONNX Runtime's calibrator opens its session with default options (a thread per physical core, spinning while
    it waits): with `threads`, that session gets that many intra-op threads instead, for the time of this block.
    quantize_static takes no session options, and the calibrator's `create_inference_session` is where that session
    is made: it is replaced by the same body (default options, graph optimisations off, as onnxruntime 1.32
    writes it) plus the thread count, and restored after. An onnxruntime without it calibrates with its own default.
    The thread count is not in the artifact's cache key: MinMax and percentile ranges came out the same bytes with
    1 and 2 threads (tests/test_recipe_threads.py), as they did across machines of different core counts before."""
    try:
        from onnxruntime.quantization.calibrate import CalibraterBase
    except ImportError:
        CalibraterBase = None  # noqa: N806
    if threads is None or getattr(CalibraterBase, "create_inference_session", None) is None:
        yield
        return

    def create_inference_session(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # as onnxruntime's own
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.infer_session = onnxruntime.InferenceSession(self.augmented_model_path, sess_options=options,
                                                          providers=self.execution_providers)

    with _CALIBRATOR_LOCK:
        original = CalibraterBase.create_inference_session
        CalibraterBase.create_inference_session = create_inference_session
        try:
            yield
        finally:
            CalibraterBase.create_inference_session = original


@register_recipe("int8-static", Int8StaticParams, tools=("onnx", "onnxruntime", "numpy"), uses_calibration=True)
def compress_int8_static(model: Path, params: Int8StaticParams, context: RecipeContext) -> Artifact:
    """QDQ INT8 with activation ranges calibrated on the spec's calibration data."""
    if context.calibration is None:
        raise RecipeError("int8-static needs calibration data: set data.calibration in the spec "
                          "(an .npz of representative inputs)")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from edgecheck.data import calibration_feeds
    from edgecheck.model import inspect_onnx

    out = artifact_path(model, "int8-static", context)
    with _quantizer_input(model, params, "int8-static", context) as (source, notes):
        prepared_source = source  # what quant_pre_process fuses is said against it
        if params.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            prepared = source.with_name("preprocessed.onnx")
            try:
                quant_pre_process(str(source), str(prepared))
            except Exception as exc:
                raise _fail("int8-static", "onnxruntime quant_pre_process (set preprocess: false to skip it)", exc)
            source, notes["preprocess"] = prepared, "quant_pre_process (shape inference, optimisation)"
        exclude, op_types = _selection(load_model_for_editing(source), params, "int8-static")
        try:
            calibration = calibration_feeds(inspect_onnx(model), context.calibration, params.samples)
        except EdgecheckError as exc:
            raise RecipeError(f"int8-static: calibration data: {exc}") from None
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[params.method]
        extra = {"CalibPercentile": params.percentile} if params.method == "percentile" else {}
        try:
            # (the histogram calibrators print progress; calibration runs on this session's share of the cores)
            with contextlib.redirect_stdout(io.StringIO()), calibration_threads(context.threads):
                quantize_static(
                    str(source), str(out), _FeedReader(calibration.feeds), quant_format=QuantFormat.QDQ,
                    activation_type=_quant_type(params.activations), weight_type=_quant_type(params.weights),
                    per_channel=params.per_channel, calibrate_method=method, nodes_to_exclude=exclude,
                    op_types_to_quantize=op_types, extra_options=extra,
                )
        except Exception as exc:
            raise _fail("int8-static", "onnxruntime.quantization.quantize_static", exc) from exc
        summary = _quantized_summary(prepared_source, out)
    per = "per-channel" if params.per_channel else "per-tensor"
    method_text = params.method + (f" {params.percentile:g}" if params.method == "percentile" else "")
    return Artifact(out, "int8-static", {
        "tool": f"onnxruntime.quantization.quantize_static (QDQ, {method_text}, {per}, "
                f"{params.activations} activations, {params.weights} weights)",
        "calibration": calibration.source,
        **notes,
        **summary,
    })
