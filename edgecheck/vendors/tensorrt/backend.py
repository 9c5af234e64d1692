"""The tensorrt backend: `.trtjob` artifacts built into engines and run on a Jetson board, never here.

An engine is specific to the GPU and TensorRT version that built it, so a TensorRT item runs only in a
worker on a board of the boards file (edgecheck.boards, `RunOptions(on_board=True)`): the worker finds
trtexec, builds the job's engine once (engine.ensure_engine: cached in the board's store, under a lock),
and runs it with the TensorRT Python bindings, or with trtexec where the board's Python has none. Here,
`availability()` says so, and the item skips with that reason (a failure under --edge-strict).

Module imports are the standard library and numpy only, as in every worker module (the board's Python
has no onnx): the host reads the build settings and the inputs' names and types from the .trtjob
(`board_extra`) and sends them with the job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner
from edgecheck.errors import BackendError

TRTEXEC_ENV = "EDGECHECK_TRTEXEC"  # a trtexec named for the board's worker where RunOptions cannot reach (availability)
DEFAULT_BUILD_TIMEOUT_S = 1800.0  # a Jetson Nano takes minutes for a mid-sized model (3 min in RESEARCH20 2.1)
BUILD_KEY, INPUTS_KEY, OUTPUTS_KEY = "tensorrt.build", "tensorrt.inputs", "tensorrt.outputs"
RUNNER_KEY, TIMEOUT_KEY = "tensorrt.runner", "tensorrt.build_timeout_s"  # "trtexec" forces TrtexecRunner
HOST_REASON = ("TensorRT items run on a Jetson board of the boards file (edgecheck builds the engine there with the "
               "board's trtexec: an engine is specific to the GPU and TensorRT version that built it)")


class TensorrtBackend(Backend):
    name = "tensorrt"
    formats = ("tensorrt-job",)
    reads = ("onnx",)  # ONNX artifacts: the tensorrt-onnx-parser table and the cost model judge the graph
    deterministic = False  # TensorRT picks tactics by timing them: two builds may differ
    takes_threads = False  # the engine runs on the GPU (or a DLA): no thread count of ours applies
    places_on_board = True  # the board's timing run reports each engine layer's placement (timing.layer_records)

    def __init__(self) -> None:
        self._board_runner: Optional[str] = None  # which runner the last load made, for board_facts

    def availability(self) -> Availability:
        """Here (the host): never; the reason says where TensorRT items run."""
        from edgecheck.vendors.tensorrt.engine import find_trtexec

        here = find_trtexec(os.environ.get(TRTEXEC_ENV))
        if here is None:
            return Availability(False, f"{HOST_REASON}; this machine has no trtexec and is not such a board: add "
                                "the Jetson to the boards file (edgecheck boards) to run them")
        return Availability(False, f"{HOST_REASON}; this machine has {here}, but its GPU is not the target's: add the "
                            "Jetson to the boards file to run them")

    def board_availability(self) -> Availability:
        """On a board: trtexec found (the boards file's `trtexec:` reaches the worker as $EDGECHECK_TRTEXEC, else
        JetPack's /usr/src/tensorrt/bin/trtexec, else PATH) and its TensorRT version readable."""
        from edgecheck.vendors.tensorrt.engine import EngineBuildError, find_trtexec, trtexec_version

        configured = os.environ.get(TRTEXEC_ENV)
        trtexec = find_trtexec(configured)
        if trtexec is None:
            where = configured or "/usr/src/tensorrt/bin/trtexec or on PATH"
            return Availability(False, f"no trtexec at {where} on this board: install JetPack's TensorRT samples "
                                "(trtexec ships in /usr/src/tensorrt/bin), or name it with `trtexec:` in the boards file")
        try:
            trtexec_version(trtexec)
        except EngineBuildError as exc:
            return Availability(False, str(exc))
        return Availability(True)

    def cannot_serve(self, artifact: Path, device) -> str:
        """On the host: the job's build settings against the device's profile. A precision its `backends.tensorrt.
        precisions` does not list (INT8 on a Jetson Nano, whose Maxwell GPU has no INT8 path) or a `dla_core` where
        it has no `kind: dla` accelerator (the Nano) would build an engine the device cannot have; '' where the
        profile names no tensorrt precisions to judge by."""
        from edgecheck.vendors.tensorrt.format import read_build_settings

        settings = read_build_settings(Path(artifact))
        support = device.backends.get(self.name)
        problems = []
        if support is not None and support.precisions and settings.precision not in support.precisions:
            problems.append(f"its build settings ask for {settings.precision.upper()}, and {device.name}'s TensorRT "
                            f"runs {', '.join(support.precisions)} only (device profile {device.name}: "
                            f"backends.{self.name}.precisions)")
        if settings.dla_core is not None:
            dlas = [a for a in device.accelerators if a.kind == "dla"]
            if not dlas:
                problems.append(f"its build settings ask for DLA core {settings.dla_core}, and {device.name} has no DLA "
                                f"(device profile {device.name}: no accelerator of kind dla); drop dla_core for the GPU")
            elif dlas[0].precisions and settings.precision not in dlas[0].precisions:
                problems.append(f"its build settings ask for DLA core {settings.dla_core} in "
                                f"{settings.precision.upper()}, and {device.name}'s {dlas[0].name} runs "
                                f"{', '.join(dlas[0].precisions)} only")
        return "; ".join(problems)

    def board_extra(self, artifact: Path) -> Dict[str, str]:
        """On the host: the job's build settings and its inputs' and outputs' names and types (the board's Python
        has no onnx to read them)."""
        import onnx
        from onnx import helper

        from edgecheck.vendors.tensorrt.format import read_build_settings

        settings = read_build_settings(Path(artifact))
        graph = onnx.load(str(artifact), load_external_data=False).graph
        initializers = {t.name for t in graph.initializer}

        def dtype(value) -> str:
            return helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name

        inputs = [[v.name, dtype(v)] for v in graph.input if v.name not in initializers]
        outputs = [[v.name, dtype(v)] for v in graph.output]
        return {BUILD_KEY: settings.to_json(), INPUTS_KEY: json.dumps(inputs), OUTPUTS_KEY: json.dumps(outputs)}

    def board_facts(self) -> Dict[str, str]:
        """On a board: the TensorRT version, trtexec's path, the runner, and the Jetson's release and model."""
        from edgecheck.vendors.tensorrt.engine import EngineBuildError, find_trtexec, trtexec_version

        facts: Dict[str, str] = {}
        trtexec = find_trtexec(os.environ.get(TRTEXEC_ENV))
        if trtexec is not None:
            facts["trtexec"] = trtexec
            try:
                facts["tensorrt"] = str(trtexec_version(trtexec))
            except EngineBuildError as exc:
                facts["tensorrt"] = f"unreadable ({exc})"
        if self._board_runner:
            facts["runner"] = self._board_runner
        facts.update(jetson_facts())
        return facts

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        if not options.on_board:
            raise BackendError(self.name, artifact, "loading", HOST_REASON)
        from edgecheck.vendors.tensorrt.engine import EngineBuildError, ensure_engine, find_trtexec
        from edgecheck.vendors.tensorrt.trtexec import BuildSettings, SettingsError, UnsupportedFlag

        extra = dict(options.extra)
        if BUILD_KEY not in extra:
            raise BackendError(self.name, artifact, "loading", f"no build settings ({BUILD_KEY}) came with the job: "
                               "the session sends them (board_extra); a .trtjob made by a tensorrt-* recipe has them")
        try:
            settings = BuildSettings.from_json(extra[BUILD_KEY])
        except SettingsError as exc:
            raise BackendError(self.name, artifact, "loading", str(exc)) from None
        configured = extra.get("trtexec") or os.environ.get(TRTEXEC_ENV)
        trtexec = find_trtexec(configured)
        if trtexec is None:
            raise BackendError(self.name, artifact, "loading", f"no trtexec at {configured or 'the JetPack path or on PATH'}")
        try:
            build = ensure_engine(artifact, settings, trtexec, float(extra.get(TIMEOUT_KEY, DEFAULT_BUILD_TIMEOUT_S)))
        except (EngineBuildError, UnsupportedFlag) as exc:
            raise BackendError(self.name, artifact, "building the engine", str(exc)) from None
        runner = self._runner(artifact, build, settings, trtexec, extra)
        self._board_runner = f"{type(runner).__name__}: {runner.api}"
        return runner

    def _runner(self, artifact: Path, build, settings, trtexec: str, extra: Dict[str, str]) -> Runner:
        from edgecheck.vendors.tensorrt.runners import TensorrtRunner, TrtexecRunner

        if extra.get(RUNNER_KEY) != "trtexec":
            try:
                import tensorrt  # noqa: F401
            except ImportError:
                pass
            else:
                return TensorrtRunner(artifact, build, settings, trtexec)
        try:
            inputs = [(str(n), str(t)) for n, t in json.loads(extra[INPUTS_KEY])]
            outputs = [(str(n), str(t)) for n, t in json.loads(extra[OUTPUTS_KEY])]
        except (KeyError, ValueError, TypeError) as exc:
            raise BackendError(self.name, artifact, "loading", "trtexec runs the engine only with the inputs' names and "
                               f"types the session sends ({INPUTS_KEY}, {OUTPUTS_KEY}): {type(exc).__name__}: {exc}") from None
        return TrtexecRunner(artifact, build, settings, trtexec, inputs, outputs)


def jetson_facts(root: str = "/") -> Dict[str, str]:
    """The Jetson's L4T release, the JetPack it belongs to, its model, nvpmodel mode and clocks (each where known)."""
    from edgecheck.vendors.tensorrt.power import jetson_facts as read_facts

    return dict(read_facts(root))
