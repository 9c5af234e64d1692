"""TFLite recipes: an ONNX model converted by onnx2tf (float32, FP16, dynamic-range INT8, full INT8
calibrated on the spec's data), and a float .tflite quantized by ai-edge-quantizer (no TensorFlow).

onnx2tf pins versions that clash with edgecheck's, so it runs under its own environment's
interpreter (`edgecheck env create onnx2tf`), in a scratch folder, with the network blocked; where
the environment is missing the recipe is skipped with that command. onnx2tf turns NCHW inputs into
NHWC: the recipe writes beside each artifact the map of names and layouts
(`edgecheck.vendors.tflite.backend.io_sidecar`) that the tflite backend uses to feed and read it like the
ONNX model it came from.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgecheck import progress
from edgecheck.compress import (OFFLINE_GUARD, Artifact, RecipeContext, RecipeError, RecipeNotApplicable,
                                RecipeUnavailable, artifact_path, copy_model, register_recipe)
from edgecheck.vendors.tflite.onnx2tf_options import (Onnx2tfParams, converter_message, failed_node, fixed_shapes,
                                                next_option, op_type_of, shape_failure, shapes_text)

TFLITE = ".tflite"
SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


class TfliteConvertParams(Onnx2tfParams):
    pass


class TfliteStaticParams(Onnx2tfParams):
    per_channel: bool = Field(True, description="per-channel weight scales (else one per tensor; onnx2tf only)")
    io: Literal["int8", "float"] = Field("int8", description="int8: the model takes and gives int8 (full INT8); "
                                         "float: float in and out around an INT8 body (onnx2tf only)")
    samples: int | None = Field(None, ge=1, description="calibration samples to use (default: all)")


def channels_last(rank: int) -> tuple[int, ...] | None:
    """The permutation onnx2tf applies to a rank-3 to rank-5 tensor (NCW→NWC, NCHW→NHWC, NCDHW→NDHWC)."""
    return (0, *range(2, rank), 1) if 3 <= rank <= 5 else None


def _agrees(shape: tuple, theirs: tuple) -> bool:
    return len(shape) == len(theirs) and all(
        not isinstance(a, int) or not isinstance(b, int) or a < 1 or b < 1 or a == b for a, b in zip(shape, theirs))


def onnx2tf_name(name: str) -> str:
    """The name onnx2tf gives an ONNX input or output (its own sanitising: ':' → '__', a leading '/' → 'wa/')."""
    return re.sub("^/", "wa/", name.replace(":", "__"))


def _perms(onnx_shape: tuple, model_shape: tuple) -> list[tuple[int, ...] | None]:
    """The layout changes the shapes allow: channels last, none, or both where the shapes cannot tell."""
    found: list[tuple[int, ...] | None] = []
    if not onnx_shape and len(model_shape) == 1 and model_shape[0] in (None, 1, -1):
        return [None]  # a scalar onnx2tf gives a dimension of 1 (the runner feeds it so)
    perm = channels_last(len(onnx_shape))
    if perm and _agrees(tuple(onnx_shape[i] for i in perm), model_shape):
        found.append(perm)
    if _agrees(onnx_shape, model_shape):
        found.append(None)
    return found


def _pair_inputs(onnx_inputs, model_inputs, source: Path) -> list:
    """Each ONNX input's converted counterpart: by name (as onnx2tf writes it), else the only one."""
    by_name = {t.name: t for t in model_inputs}
    pairs = []
    for tensor in onnx_inputs:
        theirs = by_name.get(tensor.name) or by_name.get(onnx2tf_name(tensor.name))
        if theirs is None and len(onnx_inputs) == len(model_inputs) == 1:
            theirs = model_inputs[0]
        if theirs is None:
            raise RecipeError(f"{source.name}: the converted model has no input named like {tensor.name!r} (it has "
                              f"{', '.join(t.name for t in model_inputs)}): edgecheck cannot pair them")
        pairs.append((tensor, theirs))
    return pairs


def _layout(perm: tuple[int, ...] | None, theirs, tensor) -> str:
    """What the converted tensor takes, for the report ('' where the layout is the ONNX model's)."""
    return f"channels last: {theirs.shape_text()}, the ONNX {tensor.shape_text()} transposed {list(perm)}" if perm else ""


def probe_io_map(onnx_model: Path, info, artifact: Path, converted,
                 sizes: dict[str, list[int | None]] | None = None) -> tuple[list[dict], list[dict]]:
    """Pair the converted model's inputs and outputs with the ONNX model's and find each one's layout
    by running both on the same random inputs: shapes alone cannot tell (a [1,3,3,3] tensor, or an
    output onnx2tf leaves in ONNX layout), nor can names (onnx2tf renames, and calls INT8 outputs
    output_0...). Each ONNX output takes the converted output and layout closest to ONNX Runtime's.
    Dimensions both models leave open take `sizes` (the ONNX layout's), else 1."""
    import itertools

    import onnxruntime

    from edgecheck.vendors.tflite.backend import IoMap, TfliteRunner
    from edgecheck.backends.base import RunOptions

    pairs = _pair_inputs(info.inputs, converted.inputs, onnx_model)
    options = []
    for tensor, theirs in pairs:
        perms = _perms(tensor.shape, theirs.shape)
        if not perms:
            raise RecipeError(f"{onnx_model.name}: converted input {theirs.name!r} has shape {theirs.shape_text()}, "
                              f"which matches neither the ONNX {tensor.name!r} {tensor.shape_text()} nor its "
                              "channels-last form")
        options.append(perms)
    one_thread = onnxruntime.SessionOptions()
    one_thread.intra_op_num_threads = 1  # a few small probes: not a spinning pool per core in every xdist worker
    session = onnxruntime.InferenceSession(str(onnx_model), one_thread, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    best = None
    for choice in itertools.islice(itertools.product(*options), 16):
        feed, inputs = {}, []
        for (tensor, theirs), perm in zip(pairs, choice):
            shape = tuple(d if isinstance(d, int) and d >= 1 else None for d in theirs.shape)
            known = list((sizes or {}).get(tensor.name) or ()) + [None] * len(shape)
            onnx_shape = tuple(d if d is not None else (k or 1) for d, k in zip(_unpermuted(shape, perm), known)
                               ) if tensor.shape else ()
            integer = np.issubdtype(np.dtype(tensor.dtype), np.integer) if tensor.dtype.isidentifier() else False
            feed[tensor.name] = (rng.integers(0, 8, size=onnx_shape).astype(tensor.dtype) if integer
                                 else rng.uniform(0, 1, size=onnx_shape).astype(np.float32))
            inputs.append(IoMap(tensor.name, theirs.name, perm, _layout(perm, theirs, tensor)))
        try:
            expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
        except Exception:  # shapes the ONNX model does not take: this pairing is not the one
            continue
        runner = TfliteRunner(artifact, RunOptions(), io_map=(inputs, [IoMap(t.name, t.name) for t in converted.outputs]))
        try:
            got = runner.infer(feed)
        except Exception:  # this pairing is not runnable (shapes): try the next
            continue
        finally:
            runner.close()
        outputs, score, taken = [], 0.0, set()
        for tensor in info.outputs:
            want = np.asarray(expected[tensor.name], dtype=np.float64)
            candidates = []
            for name, array in got.items():
                for perm in _perms(tuple(want.shape), tuple(array.shape)) if name not in taken else ():
                    back = IoMap("", "", perm).from_model(array)
                    error = np.linalg.norm(back - want) / max(np.linalg.norm(want), 1e-12)
                    candidates.append((float(error), name, perm))
            if not candidates:
                break
            error, name, perm = min(candidates, key=lambda c: c[0])
            taken.add(name)
            score += error
            theirs = next(t for t in converted.outputs if t.name == name)
            outputs.append(IoMap(tensor.name, name, perm, _layout(perm, theirs, tensor)))
        else:
            if best is None or score < best[0]:
                best = (score, inputs, outputs)
    if best is None:
        raise RecipeError(f"{onnx_model.name}: edgecheck could not pair the converted model's inputs and outputs "
                          "with the ONNX model's (no pairing ran with matching shapes)")
    return [e.as_json() for e in best[1]], [e.as_json() for e in best[2]]


def _write_io_map(artifact: Path, inputs: list[dict], outputs: list[dict], converter: str) -> dict[str, str]:
    from edgecheck.vendors.tflite.backend import io_sidecar

    io_sidecar(artifact).write_text(json.dumps({"converter": converter, "inputs": inputs, "outputs": outputs},
                                               indent=1), encoding="utf-8")
    changed = [f"{e['name']}: {e['layout']}" for e in inputs + outputs if e["layout"]]
    return {"layout": "; ".join(changed) if changed else "as the ONNX model (no tensor of rank 3 to 5)"}


def _calibration_arrays(model, path: Path | None, samples: int | None, recipe: str) -> dict[str, np.ndarray]:
    """The spec's calibration data per input of `model`, all samples in one array each."""
    from edgecheck.data import calibration_feeds

    if path is None:
        raise RecipeError(f"recipe {recipe!r} calibrates on data: set data.calibration in the spec")
    feeds = calibration_feeds(model, path, samples).feeds
    return {name: np.concatenate([np.asarray(f[name], dtype=np.float32) for f in feeds]) for name in feeds[0]}


def _onnx2tf(model: Path, recipe: str, mode: str, context: RecipeContext,
             params: Onnx2tfParams, static: TfliteStaticParams | None = None) -> Artifact:
    """Convert with the shapes fixed and the graph simplified as the parameters say; where a dynamic
    batch is what fails, once more with the batch fixed to 1."""
    from edgecheck.envs import find_env, unavailable_reason
    from edgecheck.model import inspect_onnx
    from edgecheck.vendors.tflite.model import inspect_tflite

    env = find_env("onnx2tf")
    if env is None:
        raise RecipeUnavailable(f"recipe {recipe!r}: {unavailable_reason('onnx2tf')}")
    info = inspect_onnx(model)
    shapes = fixed_shapes(info, context.calibration, params, params.batch_size, recipe)
    dynamic_batch = any(t.shape and not (isinstance(t.shape[0], int) and t.shape[0] > 0) for t in info.inputs)
    batches = [params.batch_size]
    if params.simplify and params.batch_size is None and any(dims and dims[0] is None for dims in shapes.values()):
        batches.append(1)  # ultralytics' exporter fixes it too: the artifact then takes one sample at a time
    out = artifact_path(model, recipe, context, TFLITE)
    tried: list[tuple[str, str, str, str]] = []  # shapes, what was prepared, the failing node, its exception
    for batch in batches:
        if batch != params.batch_size:
            shapes = fixed_shapes(info, context.calibration, params, batch, recipe)
        with progress.step(f"converting {model.name} with onnx2tf ({mode}" + (", batch 1)" if batch != params.batch_size else ")")):
            ran = _run_onnx2tf(env, model, info, shapes, recipe, mode, context, params, static, out)
        if ran.get("ok"):
            break
        tried.append((shapes_text(shapes), ran.get("prepared", ""), *failed_node(ran["log"])))
        if not shape_failure(tried[-1][3]):
            break  # not a matter of shapes (an operator onnx2tf lacks): a fixed batch would not help
    if not ran.get("ok"):
        attempts = "; then ".join(f"with {shaped}" + (f" ({prepared})" if prepared else "")
                                  for shaped, prepared, _, _ in tried)
        raise RecipeError(f"recipe {recipe!r}: onnx2tf could not convert {model.name} ({attempts}): "
                          f"{_failure(model, ran, params, len(tried) > 1)}")
    converted = inspect_tflite(out)
    notes = _write_io_map(out, *probe_io_map(model, info, out, converted, shapes), f"onnx2tf {ran['onnx2tf']}")
    done = [ran["prepared"]] if ran.get("prepared") else []
    if batch is not None and dynamic_batch:
        done.append(f"batch fixed to {batch}" + (f" (a dynamic batch did not convert: with {tried[0][0]}, onnx2tf "
                                                  f"failed at {tried[0][2]!r}: {tried[0][3]})" if tried else ""))
    if params.passed_options():
        done.append("onnx2tf options: " + ", ".join(f"{k}={v}" for k, v in params.passed_options().items()))
    if done:
        notes["prepared"] = "; ".join(done)
    return Artifact(out, recipe, {"did": f"converted by onnx2tf {ran['onnx2tf']} ({mode})", **notes})


def _failure(model: Path, ran: dict, params: Onnx2tfParams, tried_batch_1: bool) -> str:
    """onnx2tf's failure: the node, its operator and the exception where the log names them, with the
    option to try next; else the converter's own words."""
    node, exception = failed_node(ran["log"])
    said = converter_message(ran.get("error", ""), ran["log"], ran["status"])
    if not node:
        return said
    op_type = op_type_of(model, node)
    where = f"node {node!r}" + (f" ({op_type})" if op_type else "")
    return (f"it failed at {where}: {exception or said}; try next: "
            f"{next_option(op_type, exception, tried_batch_1 or params.batch_size == 1, params.simplify)}")


def _run_onnx2tf(env, model: Path, info, shapes: dict, recipe: str, mode: str, context: RecipeContext,
                 params: Onnx2tfParams, static: TfliteStaticParams | None, out: Path) -> dict:
    """One run of the driver in a scratch folder: its result, with its log and exit status; a finished
    conversion's .tflite is copied to `out` before the folder goes."""
    from edgecheck.envs import run_env_env

    with tempfile.TemporaryDirectory(prefix="onnx2tf-", dir=context.out_dir) as scratch:  # swept if killed
        work = Path(scratch)
        copy = copy_model(model, work)  # onnx2tf may rewrite its input: it only ever sees a copy
        # onnx2tf fetches this sample from GitHub to check its own output (any model whose inputs are
        # 3-channel images of batch <= 20) or to calibrate without data: it reads the file from its
        # working folder first, so a placeholder here means it never asks (the spec's data calibrates)
        np.save(work / SAMPLE_FILE, np.zeros((20, 128, 128, 3), np.float32), allow_pickle=False)
        job: dict = {"model": str(copy), "work_dir": str(work), "mode": mode,
                     "per_channel": static.per_channel if static else True, "simplify": params.simplify,
                     "input_shapes": shapes, "options": params.passed_options()}
        if static is not None:
            calibration = []
            for index, (name, array) in enumerate(_calibration_arrays(info, context.calibration, static.samples,
                                                                      recipe).items()):
                perm = channels_last(array.ndim)
                npy = work / f"calibration_{index}.npy"
                np.save(npy, np.ascontiguousarray(array.transpose(perm)) if perm else array, allow_pickle=False)
                calibration.append([onnx2tf_name(name), str(npy)])  # the name onnx2tf gives the input
            job["calibration"] = calibration
        (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
        driver = Path(__file__).with_name("onnx2tf_driver.py")
        environ = run_env_env(env)
        environ["PYTHONPATH"] = str(OFFLINE_GUARD)  # no network, in every Python it starts
        limit = context.tool_timeout_s()
        try:
            ran = subprocess.run([str(env.python), str(driver), str(work / "job.json"), str(work / "result.json")],
                                 cwd=work, env=environ, capture_output=True, text=True, errors="replace",
                                 timeout=limit)
        except subprocess.TimeoutExpired:
            raise RecipeError(f"recipe {recipe!r}: onnx2tf did not finish converting {model.name} within "
                              f"{limit:g} s (raise edge_worker_timeout to give it longer)") from None
        result_file = work / "result.json"
        result = json.loads(result_file.read_text()) if result_file.is_file() else {"ok": False, "error": ""}
        result.update(log=ran.stdout + ran.stderr, status=ran.returncode)
        if result.get("ok"):
            shutil.copyfile(result["path"], out)
        return result


def _unpermuted(shape: tuple, perm: tuple[int, ...] | None) -> tuple:
    """The shape before `perm` was applied (the ONNX model's, from the converted model's)."""
    return tuple(shape[i] for i in np.argsort(perm)) if perm else shape


def _quantizer(model: Path, recipe: str, static: bool, context: RecipeContext,
               params: TfliteStaticParams | None) -> Artifact:
    """ai-edge-quantizer on a float .tflite: dynamic (int8 weights) or static (int8 weights and
    activations, calibrated). Static needs a model with a signature."""
    try:
        from ai_edge_quantizer import quantizer, recipe as recipes
    except ImportError as exc:
        raise RecipeUnavailable(f"recipe {recipe!r} on a .tflite model needs ai-edge-quantizer: "
                                f"pip install 'pytest-edgecheck[tflite]' ({exc})") from None
    from edgecheck.vendors.tflite.backend import io_sidecar
    from edgecheck.vendors.tflite.fp16 import NOTHING, float32_weights, weight_types

    if static and params is not None and params.io != "int8":
        raise RecipeError(f"recipe {recipe!r}: ai-edge-quantizer's static INT8 takes and gives int8; "
                          "io: float is for ONNX models converted by onnx2tf")
    out = artifact_path(model, recipe, context, TFLITE)
    with tempfile.TemporaryDirectory(prefix="tflite-", dir=context.out_dir) as scratch:  # swept if killed
        source, route = float32_weights(model, recipe, Path(scratch))
        with progress.step(f"quantizing {model.name} with ai-edge-quantizer"):
            _quantize(quantizer, recipes, source, model, out, recipe, static, context, params)
    sidecar = io_sidecar(model)
    if sidecar.is_file():  # same signature, same names and layouts
        shutil.copyfile(sidecar, io_sidecar(out))
    from importlib.metadata import version

    before, after = weight_types(model), weight_types(out)
    if route and after.get("int8", 0) <= before.get("int8", 0):
        raise RecipeNotApplicable(f"recipe {recipe!r} on {model.name}: {NOTHING}; made float32, ai-edge-quantizer "
                                  "still quantized none of them (the layers reading them are not ones it quantizes)")
    kind = "static INT8 (int8 weights and activations, calibrated)" if static else "dynamic INT8 (int8 weights)"
    notes = {"did": f"quantized by ai-edge-quantizer {version('ai-edge-quantizer')}: {kind}{route}",
             "weights": f"constant tensors by type before: {_types_text(before)}; after: {_types_text(after)}"}
    return Artifact(out, recipe, notes)


def _types_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "none"


def _quantize(quantizer, recipes, source: Path, model: Path, out: Path, recipe: str, static: bool,
              context: RecipeContext, params: TfliteStaticParams | None) -> None:
    from edgecheck.vendors.tflite.backend import read_io_sidecar
    from edgecheck.model import TensorInfo
    from edgecheck.vendors.tflite.model import inspect_tflite, read_tflite

    chosen = recipes.static_wi8_ai8() if static else recipes.dynamic_wi8_afp32()
    job = quantizer.Quantizer(str(source), chosen)
    calibration = None
    if static:
        parsed = read_tflite(model)
        if parsed.signature is None:
            raise RecipeError(f"recipe {recipe!r}: ai-edge-quantizer calibrates through a signature, and "
                              f"{model.name} has none (convert it with a signature: onnx2tf writes one)")
        info = inspect_tflite(model)
        mapped = read_io_sidecar(model)
        if mapped is not None:  # the spec's data is in the ONNX model's names and layout
            shapes = {t.name: t.shape for t in info.inputs}
            view = [TensorInfo(e.name, "float32", _unpermuted(shapes[e.model_name], e.perm)) for e in mapped[0]]
            arrays = _calibration_arrays(replace(info, inputs=tuple(view)), context.calibration,
                                         params.samples if params else None, recipe)
            arrays = {e.model_name: e.to_model(arrays[e.name]) for e in mapped[0]}
        else:
            arrays = _calibration_arrays(info, context.calibration, params.samples if params else None, recipe)
        count = len(next(iter(arrays.values())))
        samples = [{name: array[i:i + 1] for name, array in arrays.items()} for i in range(count)]
        calibration = job.calibrate({parsed.signature: samples})
    job.quantize(calibration).export_model(str(out))


_TOOLS = ("env:onnx2tf", "ai-edge-litert")
_HERE = Path(__file__).resolve().parent
# the driver, the network guard, the .tflite reader and the runner the layout probe uses shape the artifact too
_SOURCES = (_HERE / "onnx2tf_driver.py", _HERE / "onnx2tf_options.py", OFFLINE_GUARD / "sitecustomize.py",
            _HERE / "fp16.py", _HERE / "model.py", _HERE / "backend.py")


@register_recipe("tflite-fp32", TfliteConvertParams, summary="ONNX to a float32 .tflite (onnx2tf; NHWC inputs)",
                 tools=_TOOLS, makes="tflite", sources=_SOURCES, uses_calibration=True,
                 calibration_optional=True)
def convert_tflite_fp32(model: Path, params: TfliteConvertParams, context: RecipeContext) -> Artifact:
    return _onnx2tf(model, "tflite-fp32", "fp32", context, params)


@register_recipe("tflite-fp16", TfliteConvertParams, tools=_TOOLS, makes="tflite", sources=_SOURCES,
                 uses_calibration=True, calibration_optional=True,
                 summary="ONNX to a .tflite with float16 weights, computed in float32 (onnx2tf)")
def convert_tflite_fp16(model: Path, params: TfliteConvertParams, context: RecipeContext) -> Artifact:
    return _onnx2tf(model, "tflite-fp16", "fp16", context, params)


@register_recipe("tflite-int8-dynamic", TfliteConvertParams, tools=(*_TOOLS, "ai-edge-quantizer"), makes="tflite", sources=_SOURCES,
                 takes=("onnx", "tflite"), uses_calibration=True, calibration_optional=True,
                 summary="int8 weights, float activations: ONNX through onnx2tf, or a float .tflite through ai-edge-quantizer")
def quantize_tflite_int8_dynamic(model: Path, params: TfliteConvertParams, context: RecipeContext) -> Artifact:
    if model.suffix == TFLITE:
        return _quantizer(model, "tflite-int8-dynamic", False, context, None)
    return _onnx2tf(model, "tflite-int8-dynamic", "int8-dynamic", context, params)


@register_recipe("tflite-int8-static", TfliteStaticParams, tools=(*_TOOLS, "ai-edge-quantizer"), makes="tflite", sources=_SOURCES,
                 takes=("onnx", "tflite"), uses_calibration=True,
                 summary="full INT8 calibrated on data.calibration: ONNX through onnx2tf, or a float .tflite "
                         "through ai-edge-quantizer")
def quantize_tflite_int8_static(model: Path, params: TfliteStaticParams, context: RecipeContext) -> Artifact:
    if model.suffix == TFLITE:
        return _quantizer(model, "tflite-int8-static", True, context, params)
    mode = "int8-static-int8-io" if params.io == "int8" else "int8-static"
    return _onnx2tf(model, "tflite-int8-static", mode, context, params, params)
