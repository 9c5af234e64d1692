"""The rknn backend: `.rknn` artifacts on rknn-toolkit2's simulator (x86_64), never called board figures.

The worker runs under the rknn environment's Python (`edgecheck env create rknn`). The toolkit's
simulator cannot run a `.rknn` loaded back from disk, only what was built in the same process, so
the runner builds again from the artifact's build folder (the job the recipe ran: the same source
copy, shapes, calibration samples and settings) and checks that the rebuild gives the recipe's
recorded outputs on its probe input, bit for bit, before it runs anything. A model built for batch 1
is run one sample at a time. Its figures are the simulator's: Rockchip's users report that a board
can differ, so every result says "simulator".

Latency and memory are not measured here: the simulator's time says nothing of the NPU's. The
compiler's own estimates (cycles, memory) come from the build report (`source: estimate`).
Module imports are the standard library and numpy only, as in every worker module.

On a board (a worker of edgecheck.boards, `RunOptions(on_board=True)`), the same `.rknn` file runs on the
NPU with rknn-toolkit-lite2 instead (edgecheck.vendors.rknn.lite): no rebuild, no build folder, and its
figures are the board's own. The session passes the inputs' and outputs' names (`board_extra`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner
from edgecheck.errors import BackendError

SIMULATOR = "rknn-toolkit2 simulator on x86_64 (not an NPU: board results can differ)"
REPORT_FILE = "report.json"
JUMP_COSINE = 0.999  # a layer whose own output cosine falls below this is where the error jumps


def build_dir(artifact: Path) -> Path:
    """The folder the rknn recipes write beside a .rknn artifact: its build job, log and report."""
    return artifact.with_name(artifact.name + ".build")


def read_report(artifact: Path) -> dict[str, Any] | None:
    """The build report the rknn recipes write (edgecheck.vendors.rknn.recipes); None where there is none."""
    try:
        report = json.loads((build_dir(artifact) / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _toolkit_here() -> bool:
    """Whether this interpreter is the toolkit's (the worker), by its installed distribution: a project's
    own folder named rknn must not pass for it."""
    try:
        metadata.distribution("rknn-toolkit2")
    except metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("rknn") is not None


class SimulatorBuild:
    """One artifact's job built again in this process and checked against its recorded probe outputs:
    what the simulator runs. Building is the costly part (INT8 calibration), so the backend keeps the
    last one for the next job on the same artifact (the parity and then the evaluation outputs)."""

    def __init__(self, artifact: Path):
        from edgecheck.vendors.rknn import toolkit

        self.artifact, self.toolkit = artifact, toolkit
        self.key = _identity(artifact)
        folder = build_dir(artifact)
        if not (folder / toolkit.JOB_FILE).is_file():
            raise BackendError("rknn", artifact, "loading",
                               f"no build folder {folder.name} beside it: the simulator runs only a model built in "
                               "the same process, so it runs .rknn files made by edgecheck's rknn recipes "
                               "(a .rknn from elsewhere needs a board)")
        self.job = toolkit.read_job(folder)
        here = os.getcwd()
        # the worker's working folder is the session's scratch folder: the toolkit's own temporary
        # files (it makes $TMPDIR/tmp*/check.rknn) go there too, so even a killed worker leaves none behind
        tempfile.tempdir = here
        with tempfile.TemporaryDirectory(prefix="edgecheck-rknn-run-") as scratch:
            os.chdir(scratch)  # whatever the toolkit writes to its working folder goes with the scratch folder
            try:
                self.rknn = self._rebuild(folder)
            except toolkit.ToolkitError as exc:
                raise BackendError("rknn", artifact, f"rebuilding for the simulator ({exc.step})", exc.message) from None
            finally:
                os.chdir(here)

    def _rebuild(self, folder: Path) -> Any:
        toolkit = self.toolkit
        rknn = toolkit.build(folder)
        try:
            toolkit._call("init_runtime", rknn.init_runtime)
            recorded = np.load(folder / toolkit.PROBE_OUTPUTS, allow_pickle=False)
            got = toolkit.infer(rknn, self.job, toolkit.probe_inputs(folder, self.job))
        except BaseException:
            rknn.release()
            raise
        expected = [recorded[f"arr_{i}"] for i in range(len(recorded.files))]
        if len(got) != len(expected) or not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, expected)):
            rknn.release()
            raise BackendError("rknn", self.artifact, "rebuilding for the simulator",
                               "the rebuild does not reproduce the artifact's recorded outputs on its probe input "
                               "(a different rknn-toolkit2 than the one that built it?): rebuild the artifact "
                               "(edgecheck cache clear)")
        return rknn

    def release(self) -> None:
        rknn, self.rknn = self.rknn, None
        if rknn is not None:
            rknn.release()


def _identity(artifact: Path) -> tuple[str, int, int]:
    stat = artifact.stat()
    return str(artifact.resolve()), stat.st_size, stat.st_mtime_ns


class RknnRunner(Runner):
    def __init__(self, artifact: Path, built: SimulatorBuild):
        self.backend, self.artifact, self._built = "rknn", artifact, built
        self.input_names = tuple(i["name"] for i in built.job["inputs"])
        self.output_names = tuple(built.job["outputs"])
        self._shapes = {i["name"]: tuple(i["shape"]) for i in built.job["inputs"]}

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [np.asarray(feed[name]) for name in self.input_names]
        built = [self._shapes[name] for name in self.input_names]
        batch = built[0][0] if built[0] else 1
        total = arrays[0].shape[0] if arrays[0].ndim else 1
        if any(tuple(a.shape[1:]) != s[1:] for a, s in zip(arrays, built)) or total % max(batch, 1):
            raise BackendError("rknn", self.artifact, "running",
                               f"inputs {[a.shape for a in arrays]} do not fit the built shapes {built} (the "
                               "toolkit fixes every dimension at build time)")
        chunks: list[list[np.ndarray]] = []
        for start in range(0, total, batch):
            chunks.append(self._built.toolkit.infer(self._built.rknn, self._built.job,
                                                    [a[start:start + batch] for a in arrays]))
        return {name: np.concatenate([chunk[i] for chunk in chunks]) for i, name in enumerate(self.output_names)}


class RknnBackend(Backend):
    name = "rknn"
    formats = ("rknn",)
    reads = ("onnx",)  # ONNX artifacts: the rknn table and the rk3588 cost model judge the graph (no toolkit)
    profile_options = "edgecheck.vendors.rknn.profile:RknnOptions"  # platform, compiler_estimate
    deterministic = True  # the same build on the same simulator gives the same outputs
    measures_time = False  # the simulator's time and memory are not the NPU's

    def availability(self) -> Availability:
        if _toolkit_here():  # in the worker: the toolkit's own environment
            return Availability(True)
        from edgecheck.envs import unavailable_reason

        reason = unavailable_reason("rknn")
        return Availability(reason is None, reason or "")

    def interpreter(self) -> str:
        if _toolkit_here():
            return sys.executable
        from edgecheck.envs import find_env

        env = find_env("rknn")
        return str(env.python) if env is not None else sys.executable

    def facts(self) -> dict[str, str]:
        """The toolkit's version, as its environment recorded it: read once per backend (a session's), since
        every item's facts and outputs key ask (reading the environment definitions each time cost a tenth
        of a second in a warm run)."""
        if self._facts is None:
            from edgecheck.envs import find_env

            env = find_env("rknn")
            self._facts = {"runtime": f"{env.tool_version if env else 'rknn-toolkit2'}", "runs_on": SIMULATOR}
        return dict(self._facts)

    def __init__(self) -> None:
        self._kept: SimulatorBuild | None = None  # the last build, released when another artifact loads
        self._board_sdk: str | None = None  # librknnrt's versions as RKNNLite reports them after a load
        self._facts: dict[str, str] | None = None

    def board_availability(self) -> Availability:
        """On a board: rknn-toolkit-lite2 (RKNNLite) and librknnrt.so, never the toolkit or its simulator."""
        from edgecheck.vendors.rknn.lite import lite_availability

        return lite_availability()

    def board_facts(self) -> dict[str, str]:
        """On a board: rknn-toolkit-lite2's version, librknnrt's (after a load) and the chip's NPU."""
        from edgecheck.vendors.rknn.lite import lite_facts

        return lite_facts(self._board_sdk)

    def board_extra(self, artifact: Path) -> dict[str, str]:
        """The options a worker on a board needs to run `artifact` (RunOptions.extra), worked out here on the
        host: the inputs' names and built shapes and the outputs' names, in the model's order, from the build
        job beside it (else the file's own description); RKNNLite cannot name them, and only the .rknn file
        goes to the board. {} where neither says."""
        artifact = Path(artifact)
        folder = build_dir(artifact)
        from edgecheck.vendors.rknn import toolkit

        inputs: list[tuple[str, list[int] | None]]
        try:
            job = toolkit.read_job(folder)
            inputs = [(str(i["name"]), [int(d) for d in i["shape"]]) for i in job["inputs"]]
            outputs = [str(o) for o in job["outputs"]]
        except (OSError, ValueError, KeyError, TypeError):
            from edgecheck.vendors.rknn.lite import io_from_info, read_model_info

            info = read_model_info(artifact)
            io = io_from_info(info) if info is not None else None
            if io is None:
                return {}
            inputs = [(name, list(shape) if shape else None) for name, shape in zip(io.inputs, io.shapes)]
            outputs = list(io.outputs)
        return {"input_names": json.dumps([name for name, _ in inputs]), "output_names": json.dumps(outputs),
                "input_shapes": json.dumps([shape for _, shape in inputs])}

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        if options.on_board:  # the board's NPU with RKNNLite: the .rknn file as it is, nothing rebuilt
            from edgecheck.vendors.rknn.lite import RknnLiteRunner

            runner = RknnLiteRunner(artifact, options)
            self._board_sdk = runner.sdk_version
            return runner
        kept = self._kept
        if kept is None or kept.key != _identity(artifact):
            self._kept = None
            if kept is not None:
                kept.release()
            self._kept = SimulatorBuild(artifact)
        return RknnRunner(artifact, self._kept)

    def diagnose(self, artifact: Path) -> list[str]:
        """Where INT8 (or float16) hurts: the first layers whose error jumps in the toolkit's per-layer
        analysis of the build, for a failing parity or accuracy check."""
        from edgecheck.vendors.rknn.build_log import LayerError, describe_error, error_jumps
        report = read_report(artifact)
        if report is None:
            return []
        rows = [LayerError(**row) for row in report.get("error_analysis", [])]
        if not rows:
            reason = report.get("analysis_error") or "the toolkit's accuracy_analysis gave no table"
            return [f"rknn per-layer error: not available ({reason})"]
        jumps = error_jumps(rows, threshold=JUMP_COSINE)
        where = ("the first layers where it jumps (cosine below "
                 f"{JUMP_COSINE})" if any(r.single_cos < JUMP_COSINE for r in jumps)  # type: ignore[operator]
                 else f"no layer's own cosine falls below {JUMP_COSINE}; the lowest")
        lines = [f"rknn per-layer error (rknn-toolkit2's accuracy_analysis of the build, simulator against the float "
                 f"model, on {report.get('probe_source', 'one input')}): {where}:"]
        lines += [f"  {describe_error(row)}" for row in jumps]
        return lines
