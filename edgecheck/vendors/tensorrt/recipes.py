"""TensorRT recipes: an ONNX model made into a `.trtjob` (format `tensorrt-job`) for a Jetson.

An engine is specific to the GPU and the TensorRT version that built it, so no engine is built here: the
.trtjob is the ONNX model itself, a valid ModelProto, with its build settings (precision, workspace, DLA
core, builder level, the optimisation profile of dynamic inputs) as JSON in metadata_props under
`edgecheck.tensorrt.build`. The board's trtexec builds the engine from it at its first run there
(edgecheck.vendors.tensorrt.engine), and keeps it.

`tensorrt-int8` takes only an explicitly quantized graph (Q/DQ pairs): chain it after `int8-static`, which
always writes QDQ (onnxruntime's quantize_static with QuantFormat.QDQ: compress/quantize.py), e.g.
`{name: trt-int8, steps: [int8-static, tensorrt-int8]}`. trtexec has no calibrator, and `--int8` on a float
graph uses random scales: an engine good for timing only, whose outputs mean nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field, model_validator

from edgecheck.compress import Artifact, RecipeContext, RecipeError, RecipeParams, artifact_path, \
    load_model_for_editing, register_recipe, tool_message
from edgecheck.strict import StrictModel
from edgecheck.vendors.tensorrt.trtexec import JOB_SUFFIX, METADATA_KEY, BuildSettings, InputShapes, SettingsError

_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_QOPERATOR = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QGemm",
              "QLinearAdd", "QLinearMul"}
MAX_JOB_BYTES = 1_800_000_000  # one file goes to the board: no external data


class ShapeRange(StrictModel):
    min: list[int] = Field(description="the smallest shape the engine takes, e.g. [1, 3, 224, 224]")
    opt: list[int] = Field(description="the shape TensorRT tunes for")
    max: list[int] = Field(description="the largest shape the engine takes")


class TensorrtParams(RecipeParams):
    workspace_mb: Optional[int] = Field(None, ge=1, description="the builder's workspace pool in MiB (default: "
                                        "trtexec's); --workspace before TensorRT 8.4, --memPoolSize=workspace: after")
    dla_core: Optional[int] = Field(None, ge=0, le=1, description="run on DLA core 0 or 1 (Xavier NX, AGX Xavier, "
                                    "AGX Orin have two), FP16/INT8 only; default: the GPU")
    gpu_fallback: bool = Field(True, description="with dla_core: layers the DLA cannot run go to the GPU "
                               "(--allowGPUFallback); false makes such a model fail to build")
    builder_optimization_level: Optional[int] = Field(None, ge=0, le=5, description="0-5, trtexec's default 3; "
                                                      "TensorRT 8.6 (JetPack 6) on only")
    shapes: dict[str, ShapeRange] = Field(default_factory=dict, description="the optimisation profile of each input "
                                          "with dynamic dimensions: {name: {min, opt, max}}")

    @model_validator(mode="after")
    def _fallback_needs_dla(self) -> "TensorrtParams":
        if "gpu_fallback" in self.model_fields_set and self.dla_core is None:
            raise ValueError("gpu_fallback applies only with dla_core")
        return self


class TensorrtFp32Params(TensorrtParams):
    @model_validator(mode="after")
    def _no_dla_in_fp32(self) -> "TensorrtFp32Params":
        if self.dla_core is not None:
            raise ValueError("dla_core: the DLA runs FP16 and INT8 only, not FP32; use tensorrt-fp16 or tensorrt-int8")
        return self


def _settings(model, params: TensorrtParams, precision: str, recipe: str) -> BuildSettings:
    """Build settings from the parameters, the dynamic inputs' shapes checked against the model's inputs."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        inputs[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                              for d in dims]
    unknown = sorted(set(params.shapes) - set(inputs))
    if unknown:
        raise RecipeError(f"recipe {recipe!r}: shapes: the model has no input {', '.join(map(repr, unknown))} "
                          f"(inputs: {', '.join(inputs)})")
    shapes = {}
    for name, dims in inputs.items():
        dynamic = any(not isinstance(d, int) for d in dims)
        given = params.shapes.get(name)
        if given is None:
            if dynamic:
                raise RecipeError(f"recipe {recipe!r}: input {name!r} has dynamic dimensions {dims}: TensorRT builds an "
                                  f"engine for a range of shapes, so give it in shapes: {{{name}: {{min: [...], "
                                  f"opt: [...], max: [...]}}}}")
            continue
        for which in ("min", "opt", "max"):
            shape = getattr(given, which)
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
                raise RecipeError(f"recipe {recipe!r}: shapes.{name}.{which} {shape} does not fit input {name!r} "
                                  f"{dims} (same rank, the fixed dimensions as they are)")
        try:
            shapes[name] = InputShapes(tuple(given.min), tuple(given.opt), tuple(given.max))
        except SettingsError as exc:
            raise RecipeError(f"recipe {recipe!r}: shapes.{name}: {exc}") from None
    try:
        return BuildSettings(precision=precision, workspace_mb=params.workspace_mb, dla_core=params.dla_core,
                             gpu_fallback=params.gpu_fallback, builder_optimization_level=params.builder_optimization_level,
                             shapes=shapes)
    except SettingsError as exc:
        raise RecipeError(f"recipe {recipe!r}: {exc}") from None


def _check_quantization(model, precision: str, recipe: str) -> None:
    ops = {node.op_type for node in model.graph.node}
    qoperator = sorted(ops & _QOPERATOR)
    if qoperator:
        raise RecipeError(f"recipe {recipe!r}: the model holds {', '.join(qoperator)} (ONNX Runtime's QOperator or "
                          "dynamic quantization), which TensorRT's ONNX parser does not take; TensorRT takes INT8 as "
                          "Q/DQ pairs: chain tensorrt-int8 after int8-static (it writes QDQ), from the float model")
    has_qdq = bool(ops & _QDQ)
    if precision == "int8" and not has_qdq:
        raise RecipeError(f"recipe {recipe!r} takes an explicitly quantized graph (QuantizeLinear/DequantizeLinear), "
                          "and this one has none: trtexec has no calibrator, and --int8 on a float graph uses random "
                          "scales (an engine good for timing only, its outputs meaningless). Chain it after int8-static: "
                          "{name: trt-int8, steps: [int8-static, tensorrt-int8]}")
    if precision != "int8" and has_qdq:
        raise RecipeError(f"recipe {recipe!r}: the model has Q/DQ nodes, which TensorRT builds only in INT8 mode: use "
                          "tensorrt-int8 for a quantized graph, or give this recipe the float model")


def make_job(model_path: Path, params: TensorrtParams, context: RecipeContext, precision: str, recipe: str) -> Artifact:
    """The .trtjob: the ONNX model with its build settings in its metadata, checked to load in ONNX Runtime."""
    import onnx

    model = load_model_for_editing(model_path)
    _check_quantization(model, precision, recipe)
    settings = _settings(model, params, precision, recipe)
    if model.ByteSize() > MAX_JOB_BYTES:
        raise RecipeError(f"recipe {recipe!r}: the model is {model.ByteSize() / 1e9:.1f} GB; a .trtjob is one file "
                          "(no external data) and protobuf caps that near 2 GB")
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, settings.to_json()
    out = artifact_path(model_path, recipe, context, JOB_SUFFIX)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001  the checker's complaint is the refusal
        raise RecipeError(f"recipe {recipe!r}: onnx.checker refuses the model: {tool_message(exc)}") from None
    onnx.save_model(model, str(out))
    from edgecheck.compress.verify import runtime_refusal

    refusal = runtime_refusal(out)  # ONNX Runtime (CPU) loads the job as the ONNX graph it is
    if refusal is not None:
        raise RecipeError(f"recipe {recipe!r}: ONNX Runtime cannot load the job's graph {out.name} ({refusal}); "
                          "TensorRT's parser would meet the same graph on the board")
    return Artifact(out, recipe, _notes(settings, precision))


def _notes(settings: BuildSettings, precision: str) -> dict[str, str]:
    what = {"fp32": "FP32 (--noTF32)", "fp16": "FP16 (--fp16)",
            "int8": "INT8 from the graph's Q/DQ scales (--int8 --fp16 on TensorRT 8.x, --stronglyTyped on 10.x)"}
    where = (f"DLA core {settings.dla_core}" + (" with GPU fallback" if settings.gpu_fallback else ", no GPU fallback")
             if settings.dla_core is not None else "the GPU")
    notes = {"did": f"wrote a TensorRT build job: the ONNX graph unchanged, with build settings {what[precision]} "
                    f"for {where} in its metadata ({METADATA_KEY})",
             "engine": "not built here: trtexec builds the engine on the Jetson at the job's first run there (an "
                       "engine is specific to the GPU and TensorRT version that built it) and keeps it",
             "verified": "ONNX Runtime (CPU) loads the job as the ONNX graph it is; that is no TensorRT build"}
    if settings.workspace_mb is not None:
        notes["workspace"] = f"{settings.workspace_mb} MiB"
    if settings.builder_optimization_level is not None:
        notes["builder_optimization_level"] = f"{settings.builder_optimization_level} (TensorRT 8.6 on; older boards refuse it)"
    if settings.shapes:
        notes["shapes"] = "; ".join(f"{name} min {list(s.min)} opt {list(s.opt)} max {list(s.max)}"
                                    for name, s in sorted(settings.shapes.items()))
    return notes


_TOOLS = ("onnx", "onnxruntime")
_SOURCES = (Path(__file__).resolve().with_name("trtexec.py"),)  # the settings JSON is written there


@register_recipe("tensorrt-fp32", TensorrtFp32Params, tools=_TOOLS, makes="tensorrt-job", sources=_SOURCES,
                 summary="ONNX to a TensorRT FP32 build job (.trtjob); the engine is built on the Jetson by trtexec")
def tensorrt_fp32(model: Path, params: TensorrtFp32Params, context: RecipeContext) -> Artifact:
    return make_job(model, params, context, "fp32", "tensorrt-fp32")


@register_recipe("tensorrt-fp16", TensorrtParams, tools=_TOOLS, makes="tensorrt-job", sources=_SOURCES,
                 summary="ONNX to a TensorRT FP16 build job (.trtjob), GPU or DLA; the engine is built on the Jetson")
def tensorrt_fp16(model: Path, params: TensorrtParams, context: RecipeContext) -> Artifact:
    return make_job(model, params, context, "fp16", "tensorrt-fp16")


@register_recipe("tensorrt-int8", TensorrtParams, tools=_TOOLS, makes="tensorrt-job", sources=_SOURCES,
                 summary="a Q/DQ ONNX (chain after int8-static) to a TensorRT INT8 build job (.trtjob)")
def tensorrt_int8(model: Path, params: TensorrtParams, context: RecipeContext) -> Artifact:
    return make_job(model, params, context, "int8", "tensorrt-int8")
