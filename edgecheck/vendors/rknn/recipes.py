"""RKNN recipes: an ONNX model built by Rockchip's rknn-toolkit2 into a `.rknn` for a Rockchip NPU,
in float16 (`rknn-fp16`) or INT8 calibrated on the spec's data (`rknn-int8`).

The toolkit pins numpy, onnx and torch versions that clash with edgecheck's, so it runs under its
own environment's interpreter (`edgecheck env create rknn`), in a subprocess (its known segfaults end
that process, not the session), in a scratch working folder (a verbose build writes check*.onnx files
into the working folder). Beside the artifact goes its build folder (`<artifact>.build/`): the job
(a copy of the source model, the fixed input shapes, the calibration samples and the toolkit's
settings), so the rknn backend can build the same model again for the simulator; the toolkit's log;
and `report.json`, what the log says: each layer's placement (NPU or CPU), the compiler's cycle
estimate, its memory totals and the per-layer error of `accuracy_analysis`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgecheck import progress
from edgecheck.vendors.rknn.backend import REPORT_FILE, build_dir
from edgecheck.compress import Artifact, RecipeContext, RecipeError, RecipeParams, RecipeUnavailable, artifact_path, \
    copy_model, register_recipe

RKNN = ".rknn"
PLATFORMS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1103", "rv1106", "rv1103b", "rv1106b", "rv1126b",
             "rk2118")  # what rknn-toolkit2 2.5.0's config(target_platform=...) accepts


class RknnFloatParams(RecipeParams):
    platform: Literal[PLATFORMS] = Field("rk3588", description="the Rockchip chip to build for (config's "  # type: ignore[valid-type]
                                         "target_platform); a .rknn runs only on the platform it was built for")
    optimization_level: int = Field(3, ge=0, le=3, description="the toolkit's graph optimisation level")
    disable_rules: list[str] = Field(default_factory=list, description="toolkit fusion rules to turn off, e.g. "
                                     "[convert_layernorm_to_exnorm] for a LayerNormalization without epsilon")


class RknnInt8Params(RknnFloatParams):
    samples: int | None = Field(None, ge=1, description="calibration samples to use (default: all; at most 500)")
    algorithm: Literal["normal", "mmse", "kl_divergence"] = Field(
        "normal", description="quantized_algorithm: normal (min/max), mmse (slower, often closer), kl_divergence")
    per_channel: bool = Field(True, description="per-channel weight scales (quantized_method: channel), else layer")


def _fixed_inputs(info, feeds: list[dict[str, np.ndarray]], recipe: str) -> list[dict]:
    """Each input with the shape the build fixes: the model's, its open dimensions from one sample;
    without samples, an open batch is 1 and any other open dimension is refused."""
    fixed = []
    for tensor in info.inputs:
        sample = feeds[0][tensor.name] if feeds else None
        open_dims = [i for i, d in enumerate(tensor.shape) if not (isinstance(d, int) and d > 0)]
        if sample is None and any(i > 0 for i in open_dims):
            raise RecipeError(f"recipe {recipe!r}: rknn-toolkit2 fixes every dimension at build time, and input "
                              f"{tensor.name!r} {tensor.shape_text()} has open dimensions beyond the batch: add "
                              "data.calibration to the spec (the build takes one sample's shape)")
        shape = [d if i not in open_dims else (int(sample.shape[i]) if sample is not None else 1)
                 for i, d in enumerate(tensor.shape)]
        fixed.append({"name": tensor.name, "shape": shape})
    return fixed


def _samples(info, calibration: Path | None, limit: int | None, recipe: str, required: bool) -> list[dict]:
    """Calibration samples, one batch-1 feed each (the toolkit calibrates on single samples)."""
    from edgecheck.data import calibration_feeds

    if calibration is None:
        if required:
            raise RecipeError(f"recipe {recipe!r} calibrates on data: set data.calibration in the spec")
        return []
    samples: list[dict[str, np.ndarray]] = []
    cap = min(limit or 500, 500)
    # one sample each (a whole batch for a fixed batch size), along each input's batch axis
    for sample in calibration_feeds(info, calibration, None).samples():
        samples.append({name: np.ascontiguousarray(value) for name, value in sample.items()})
        if len(samples) >= cap:
            return samples
    return samples


def _random_probe(fixed: list[dict], info) -> dict[str, np.ndarray]:
    """Where the spec has no calibration data: one uniform random input (said so in the notes)."""
    rng = np.random.default_rng(0)
    dtypes = {t.name: t.dtype for t in info.inputs}
    return {i["name"]: rng.uniform(0, 1, i["shape"]).astype(dtypes.get(i["name"], "float32")) for i in fixed}


def _save_input(path: Path, array: np.ndarray) -> None:
    """An input as the toolkit takes it: float inputs as float32 (it refuses float64)."""
    np.save(path, array.astype(np.float32) if array.dtype.kind == "f" else array, allow_pickle=False)


def _write_job(model: Path, work: Path, artifact: Path, info, samples: list[dict], quantize: bool,
               params: RknnFloatParams, recipe: str) -> dict:
    copy_model(model, work)  # the toolkit only ever sees a copy
    fixed = _fixed_inputs(info, samples, recipe)
    names = [i["name"] for i in fixed]
    lines = []
    (work / "calibration").mkdir()
    for index, sample in enumerate(samples):
        files = [f"calibration/s{index}_{position}.npy" for position in range(len(names))]
        for file, name in zip(files, names):
            _save_input(work / file, sample[name])
        lines.append(" ".join(files))  # one line per sample, the inputs in model order
    (work / "dataset.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    probe = samples[0] if samples else _random_probe(fixed, info)
    probe_files = [f"probe_{position}.npy" for position in range(len(names))]
    for file, name in zip(probe_files, names):
        _save_input(work / file, probe[name])
    params_int8 = params if isinstance(params, RknnInt8Params) else None
    job = {"model": model.name, "artifact": artifact.name, "platform": params.platform, "quantize": quantize,
           "quantized_dtype": "w8a8", "quantized_algorithm": params_int8.algorithm if params_int8 else "normal",
           "quantized_method": "channel" if (params_int8 is None or params_int8.per_channel) else "layer",
           "optimization_level": params.optimization_level, "disable_rules": params.disable_rules,
           "inputs": fixed, "outputs": [t.name for t in info.outputs], "dataset": "dataset.txt",
           "calibration_samples": len(samples), "probe": probe_files,
           "probe_source": "calibration sample 0" if samples else "a uniform random input (no data.calibration)"}
    (work / "job.json").write_text(json.dumps(job, indent=1), encoding="utf-8")
    return job


def _crash(returncode: int) -> str:
    from edgecheck.worker.client import signal_name

    return f"crashed ({signal_name(-returncode)})" if returncode < 0 else f"exited with status {returncode} without a result"


def build_rknn(model: Path, recipe: str, params: RknnFloatParams, context: RecipeContext, quantize: bool) -> Artifact:
    """Run the toolkit's build in its environment; the artifact, its build folder and report."""
    from edgecheck.vendors.rknn.build_log import checker_warning, parse_build_log, parse_error_analysis, refusal
    from edgecheck.vendors.rknn import toolkit as rknn_toolkit
    from edgecheck.envs import find_env, run_env_env, unavailable_reason
    from edgecheck.model import inspect_onnx

    env = find_env("rknn")
    if env is None:
        raise RecipeUnavailable(f"recipe {recipe!r}: {unavailable_reason('rknn')}")
    info = inspect_onnx(model)
    samples = _samples(info, context.calibration, params.samples if isinstance(params, RknnInt8Params) else 1, recipe, required=quantize)
    out = artifact_path(model, recipe, context, RKNN)
    work = build_dir(out)
    work.mkdir()
    job = _write_job(model, work, out, info, samples, quantize, params, recipe)
    with tempfile.TemporaryDirectory(prefix="rknn-", dir=context.out_dir) as scratch:  # swept if killed
        environ = run_env_env(env)
        environ["TMPDIR"] = scratch  # the toolkit's own temporary files stay in the scratch folder
        limit = context.tool_timeout_s()
        with open(work / "stdout.log", "wb") as stdout, open(work / "stderr.log", "wb") as stderr, \
                progress.step(f"building {model.name} with rknn-toolkit2"):
            try:
                ran = subprocess.run([str(env.python), str(Path(rknn_toolkit.__file__)), str(work)], cwd=scratch,
                                     env=environ, stdout=stdout, stderr=stderr, timeout=limit)
            except subprocess.TimeoutExpired:
                step = _read(work / rknn_toolkit.PHASE_FILE) or "starting"
                raise RecipeError(f"recipe {recipe!r}: rknn-toolkit2 did not finish {step} of {model.name} "
                                  f"within {limit:g} s (raise edge_worker_timeout to give it "
                                  f"longer){_log_tail(work)}") from None
    log, errors = _read(work / "stdout.log"), _read(work / "stderr.log")
    result = json.loads(_read(work / rknn_toolkit.RESULT_FILE) or "{}")
    if not result.get("ok"):
        step = result.get("step") or _read(work / rknn_toolkit.PHASE_FILE) or "starting"
        if not result:  # no result written: the process died (the toolkit's segfaults, an abort)
            raise RecipeError(f"recipe {recipe!r}: rknn-toolkit2 {_crash(ran.returncode)} during {step} of "
                              f"{model.name}{_log_tail(work)}")
        said = refusal(errors)
        message = said if "convert_layernorm_to_exnorm" in said else (result.get("error") or said)
        warned = checker_warning(errors)  # the cause, where the toolkit failed on after onnx's checker did
        if warned and warned not in message:
            message = f"{message} (before that it warned: {warned})"
        raise RecipeError(f"recipe {recipe!r}: rknn-toolkit2 {result.get('toolkit', '')} refused {model.name} "
                          f"at {step}: {message}")
    parsed = parse_build_log(log)
    analysis = parse_error_analysis(_read(work / rknn_toolkit.SNAPSHOT / "error_analysis.txt"))
    shutil.rmtree(work / rknn_toolkit.SNAPSHOT, ignore_errors=True)  # per-layer dumps: the table is kept
    report = {"toolkit": result.get("toolkit", ""), "platform": params.platform, "quantized": quantize,
              "build": parsed.as_json(), "error_analysis": [vars(row) for row in analysis],
              "analysis_error": result.get("analysis_error", ""), "probe_source": job["probe_source"],
              "seconds": result.get("seconds")}
    (work / REPORT_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return Artifact(out, recipe, _notes(job, parsed, report, params))


def _notes(job: dict, parsed, report: dict, params: RknnFloatParams) -> dict[str, str]:
    if job["quantize"]:
        kind = (f"INT8 (w8a8, {job['quantized_algorithm']}, per-{job['quantized_method']} weights, calibrated on "
                f"{job['calibration_samples']} samples)")
    else:
        kind = "float16"
    notes = {"did": f"built by rknn-toolkit2 {report['toolkit']} for {params.platform}: {kind}",
             "shapes": ", ".join(f"{i['name']} {i['shape']}" for i in job["inputs"])}
    layers = [layer for layer in parsed.layers if not layer.boundary]
    if layers:
        cpu = parsed.cpu_layers()
        notes["placement"] = (f"{len(layers) - len(cpu)} layers on the NPU, {len(cpu)} on the CPU"
                              + (f" ({', '.join(layer.full_name for layer in cpu[:5])})" if cpu else ""))
    else:
        notes["placement"] = "unknown: no layer table in the toolkit's log"
    return notes


def _log_tail(work: Path, lines: int = 12) -> str:
    """The end of the toolkit's stderr for a failure message (the build folder goes with a failed entry)."""
    from edgecheck.vendors.rknn.build_log import strip_ansi

    said = [strip_ansi(line).rstrip() for line in _read(work / "stderr.log").splitlines() if line.strip()]
    return f"; the end of its log: {' | '.join(said[-lines:])[-1500:]}" if said else ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


_TOOLS = ("env:rknn",)
_HERE = Path(__file__).resolve().parent
_SOURCES = (_HERE / "toolkit.py", _HERE / "build_log.py")


@register_recipe("rknn-fp16", RknnFloatParams, tools=_TOOLS, makes="rknn", sources=_SOURCES, uses_calibration=True,
                 calibration_optional=True,
                 summary="ONNX to a float16 .rknn for a Rockchip NPU (rknn-toolkit2; rk3588 unless platform says)")
def build_rknn_fp16(model: Path, params: RknnFloatParams, context: RecipeContext) -> Artifact:
    return build_rknn(model, "rknn-fp16", params, context, quantize=False)


@register_recipe("rknn-int8", RknnInt8Params, tools=_TOOLS, makes="rknn", sources=_SOURCES, uses_calibration=True,
                 summary="ONNX to an INT8 .rknn calibrated on data.calibration (rknn-toolkit2; algorithm, per_channel)")
def build_rknn_int8(model: Path, params: RknnInt8Params, context: RecipeContext) -> Artifact:
    return build_rknn(model, "rknn-int8", params, context, quantize=True)
