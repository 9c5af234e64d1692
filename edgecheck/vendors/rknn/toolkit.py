"""rknn-toolkit2 driven from a job file, under the toolkit's own environment's Python.

Only the standard library, numpy and the toolkit are imported here: this module runs as a script in
the rknn environment (`edgecheck env create rknn`), where the toolkit's pins (numpy <= 1.26, onnx <=
1.18) rule edgecheck's own dependencies out. The recipe (edgecheck.vendors.rknn.recipes) runs it as a
script to build, export and analyse; the backend's runner (edgecheck.vendors.rknn.backend) imports it in
its worker to build again and run the simulator, because the toolkit's simulator cannot run a
`.rknn` loaded back from disk (init_runtime returns -1): it runs only what was built in the same
process. The job is the whole recipe for the build, so both builds are the same build, and the
runner checks that on the recorded probe outputs.

Script use: python toolkit.py BUILD_DIR   (reads BUILD_DIR/job.json, writes BUILD_DIR/result.json)
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
PHASE_FILE = "phase"  # the step under way, so a crash (segfault) still names it
PROBE_OUTPUTS = "probe_outputs.npz"
SNAPSHOT = "snapshot"


class ToolkitError(Exception):
    """A toolkit step refused or failed: the step and the toolkit's words."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


def read_job(build_dir: Path) -> dict[str, Any]:
    return json.loads((build_dir / JOB_FILE).read_text(encoding="utf-8"))


def _phase(build_dir: Path | None, step: str) -> None:
    if build_dir is not None:
        (build_dir / PHASE_FILE).write_text(step, encoding="utf-8")


# an exception line of a formatted traceback; its type may be qualified, digits included
# (onnx.onnx_cpp2py_export.checker.ValidationError)
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception)): ")


def last_error(text: str) -> str:
    """The toolkit's message inside its formatted traceback: the last `SomeError: ...` line and the
    lines that continue it (onnx's checker says the node on the lines after its first), the type's
    module path dropped; where no such line is, the whole text, never only its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if EXCEPTION_LINE.match(line)]
    if not starts:
        return " ".join(lines)[-2000:]
    message = EXCEPTION_LINE.sub(lambda m: f"{m.group(1)}: ", " ".join(lines[starts[-1]:]))
    return re.sub(r"^(ValueError|RuntimeError): ", "", message)


def _call(step: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """One toolkit call: it raises (ValueError with its traceback as text), or returns -1, or None."""
    try:
        result = function(*args, **kwargs)
    except Exception as exc:
        raise ToolkitError(step, last_error(str(exc)) or type(exc).__name__) from exc
    if isinstance(result, int) and result != 0:
        raise ToolkitError(step, f"returned {result} (its log says why)")
    return result


def build(build_dir: Path, verbose: bool = False, record: bool = False) -> Any:
    """config, load_onnx and build as the job says; the built RKNN object (the caller releases it)."""
    from rknn.api import RKNN

    job = read_job(build_dir)
    rknn = RKNN(verbose=verbose)
    try:
        _configure_and_build(rknn, job, build_dir, record)
    except BaseException:
        rknn.release()
        raise
    return rknn


def _configure_and_build(rknn: Any, job: dict[str, Any], build_dir: Path, record: bool) -> None:
    config: dict[str, Any] = {"target_platform": job["platform"], "optimization_level": job["optimization_level"]}
    if job["quantize"]:
        config.update(quantized_dtype=job["quantized_dtype"], quantized_algorithm=job["quantized_algorithm"],
                      quantized_method=job["quantized_method"])
    if job.get("disable_rules"):
        config["disable_rules"] = list(job["disable_rules"])
    _phase(build_dir if record else None, "config")
    _call("config", rknn.config, **config)
    _phase(build_dir if record else None, "load_onnx")
    _call("load_onnx", rknn.load_onnx, model=str(build_dir / job["model"]),
          inputs=[i["name"] for i in job["inputs"]], input_size_list=[i["shape"] for i in job["inputs"]])
    _phase(build_dir if record else None, "build")
    if job["quantize"]:
        _call("build", rknn.build, do_quantization=True, dataset=str(build_dir / job["dataset"]))
    else:
        _call("build", rknn.build, do_quantization=False)


def data_format(array: np.ndarray) -> str | None:
    return "nchw" if array.ndim == 4 else None  # the ONNX layout; other ranks are taken as they are


def infer(rknn: Any, job: dict[str, Any], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """One simulator run on inputs of the built shapes (float inputs as float32: float64 returns None)."""
    feeds = [np.ascontiguousarray(a, dtype=np.float32) if a.dtype.kind == "f" else np.ascontiguousarray(a)
             for a in arrays]
    # one format for all inputs: the toolkit applies it to 4-D inputs only, and a list holding None fails
    four_d = any(data_format(a) for a in feeds)
    outputs = _call("inference", rknn.inference, inputs=feeds, data_format="nchw" if four_d else None)
    if outputs is None:
        raise ToolkitError("inference", "returned no outputs (its log says why)")
    if len(outputs) != len(job["outputs"]):
        raise ToolkitError("inference", f"gave {len(outputs)} outputs for the model's {len(job['outputs'])} "
                           f"({', '.join(job['outputs'])}); the toolkit drops an output that is also read by another "
                           "node or is an Identity of one, so edgecheck cannot tell which is which")
    return [np.asarray(o) for o in outputs]


def probe_inputs(build_dir: Path, job: dict[str, Any]) -> list[np.ndarray]:
    return [np.load(build_dir / name, allow_pickle=False) for name in job["probe"]]


def main(build_dir: Path) -> int:
    """The recipe's build: build, export, per-layer analysis and the probe's outputs; result.json says
    how it went. The toolkit's log goes to this process's stdout and stderr (the caller keeps them)."""
    result: dict[str, Any] = {"ok": False}
    started = time.perf_counter()
    try:
        from importlib.metadata import version

        result["toolkit"] = version("rknn-toolkit2")
        job = read_job(build_dir)
        rknn = build(build_dir, verbose=True, record=True)
        _phase(build_dir, "export_rknn")
        _call("export_rknn", rknn.export_rknn, str(build_dir.parent / job["artifact"]))
        _phase(build_dir, "accuracy_analysis")
        try:  # a diagnosis only: its failure must not fail the build
            _call("accuracy_analysis", rknn.accuracy_analysis, inputs=[str(build_dir / n) for n in job["probe"]],
                  output_dir=str(build_dir / SNAPSHOT))
        except ToolkitError as exc:
            result["analysis_error"] = str(exc)
        _phase(build_dir, "init_runtime")
        _call("init_runtime", rknn.init_runtime)
        _phase(build_dir, "inference")
        outputs = infer(rknn, job, probe_inputs(build_dir, job))
        np.savez(build_dir / PROBE_OUTPUTS, *outputs)
        rknn.release()
        result["ok"] = True
    except ToolkitError as exc:
        result.update(step=exc.step, error=exc.message)
    except Exception as exc:
        result.update(step=(build_dir / PHASE_FILE).read_text() if (build_dir / PHASE_FILE).is_file() else "",
                      error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.perf_counter() - started, 3)
    sys.stdout.flush()
    (build_dir / RESULT_FILE).write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    # run as a script, this folder is first on sys.path, and its rknn.py (the backend) would shadow the toolkit
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.exit(main(Path(sys.argv[1]).resolve()))
