"""ONNX Runtime on the CPU: the reference backend, with threads pinned for reproducible outputs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner

PROVIDER = "CPUExecutionProvider"


class OnnxRuntimeRunner(Runner):
    def __init__(self, session, artifact: Path):
        self.backend = OnnxRuntimeBackend.name
        self.artifact = artifact
        self._session = session
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(list(self.output_names), dict(feed))
        return dict(zip(self.output_names, values))

    def _bind_impl(self, feed: Mapping[str, np.ndarray]) -> Callable[[], object]:
        # exactly the call a bare `session.run` loop makes, so timing adds nothing of edgecheck's
        return functools.partial(self._session.run, list(self.output_names), dict(feed))

    def close(self) -> None:
        self._session = None


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx",)
    reference_for = ("onnx",)  # the reference outputs of a .onnx model
    deterministic = True  # CPU provider, sequential execution, a fixed thread count

    def availability(self) -> Availability:
        try:
            import onnxruntime
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not installed ({exc}); pip install onnxruntime")
        if PROVIDER not in onnxruntime.get_available_providers():
            return Availability(False, f"onnxruntime {onnxruntime.__version__} has no {PROVIDER}")
        return Availability(True)

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        session_options.log_severity_level = 3  # errors only: warnings would drown the test report
        for key, value in options.extra.items():
            session_options.add_session_config_entry(key, value)
        session = onnxruntime.InferenceSession(str(artifact), sess_options=session_options, providers=[PROVIDER])
        return OnnxRuntimeRunner(session, artifact)

    def op_table(self):  # -> OpTable
        from edgecheck.vendors.onnxruntime.optable import table_from_onnxruntime

        if not hasattr(self, "_op_table"):
            self._op_table = table_from_onnxruntime()
        return self._op_table

    def arithmetic_note(self) -> str:
        return "ONNX Runtime's CPU runs a float16 graph by casting it to float32"

    def facts(self) -> dict[str, str]:
        import onnxruntime

        return {"version": onnxruntime.__version__, "provider": PROVIDER}
