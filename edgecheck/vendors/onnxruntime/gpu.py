"""ONNX Runtime on a GPU: its TensorRT and CUDA execution providers (onnxruntime-gpu, e.g. a Jetson's build
from NVIDIA's Jetson Zoo wheels), as backends of their own beside the CPU reference.

The ONNX artifact runs as it is (fp16 off unless the backend's profile option says so). ONNX Runtime falls
back to the CPU without a word when a provider cannot start, so the providers the session really uses are
recorded in the facts, and a session where the wanted provider is not among them fails loudly: its times
would be the CPU's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import ClassVar

from edgecheck.backends.base import Availability, RunOptions, Runner
from edgecheck.errors import BackendError
from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend, OnnxRuntimeRunner

CACHE_DIR_ENV = "EDGECHECK_ORT_TRT_CACHE"  # where the TensorRT provider keeps its engines (else a temp folder)


class GpuRunner(OnnxRuntimeRunner):
    def __init__(self, session, artifact: Path, backend: str):
        super().__init__(session, artifact)
        self.backend = backend


class OnnxRuntimeGpuBackend(OnnxRuntimeBackend):
    """ONNX Runtime with a GPU provider first; subclasses name it. Never the reference (not inherited)."""

    provider: ClassVar[str]
    providers: ClassVar[tuple[str, ...]]
    deterministic = False  # a GPU's kernels (and TensorRT's tactic choice) need not repeat bit for bit
    reference_for = ()

    def __init__(self) -> None:
        self._used: list[str] = []

    def availability(self) -> Availability:
        try:
            import onnxruntime
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not installed ({exc}); a GPU build (onnxruntime-gpu, on a "
                                "Jetson NVIDIA's Jetson Zoo wheel for its JetPack) is needed")
        found = onnxruntime.get_available_providers()
        if self.provider not in found:
            return Availability(False, f"this onnxruntime {onnxruntime.__version__} has no {self.provider} (it has "
                                f"{', '.join(found)}): {self.name} needs onnxruntime-gpu with CUDA (on a Jetson, the "
                                "Jetson Zoo wheel for its JetPack) and a GPU")
        return Availability(True)

    def _provider_options(self, options: RunOptions, artifact: Path) -> list[tuple[str, dict[str, object]]]:
        return [(name, {}) for name in self.providers]

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(artifact), sess_options=session_options,
                                               providers=self._provider_options(options, artifact))
        used = list(session.get_providers())
        check_provider_used(self.name, self.provider, used, artifact)
        self._used = used
        return GpuRunner(session, artifact, self.name)

    def op_table(self):  # the CPU kernel registry says nothing of what a GPU provider runs
        return None

    def arithmetic_note(self) -> str:
        return ""

    def facts(self) -> dict[str, str]:
        import onnxruntime

        facts = {"version": onnxruntime.__version__, "provider": self.provider}
        if self._used:
            facts["providers_used"] = ", ".join(self._used)
        return facts


def check_provider_used(backend: str, wanted: str, used: list[str], artifact: Path) -> None:
    """A session that does not use `wanted` (ONNX Runtime fell back to the CPU) is refused: its figures would be
    the CPU's under a GPU backend's name."""
    if wanted not in used:
        raise BackendError(backend, artifact, "loading",
                           f"ONNX Runtime did not start {wanted} (the session uses {', '.join(used) or 'nothing'}): it "
                           "fell back without an error, and timing that would time the CPU; check that the CUDA and "
                           "TensorRT libraries onnxruntime-gpu was built against are installed")


class OnnxRuntimeTensorrtBackend(OnnxRuntimeGpuBackend):
    """ONNX Runtime's TensorRT provider, with CUDA and the CPU for what TensorRT does not take."""

    name = "onnxruntime-trt"
    provider = "TensorrtExecutionProvider"
    providers = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    profile_options = None

    def _provider_options(self, options: RunOptions, artifact: Path) -> list[tuple[str, dict[str, object]]]:
        fp16 = str(options.extra.get("trt_fp16_enable", "false")).lower() == "true"
        base = os.environ.get(CACHE_DIR_ENV) or os.path.join(tempfile.gettempdir(), "edgecheck-ort-trt-cache")
        cache = os.path.join(base, engine_cache_key(artifact, fp16))
        os.makedirs(cache, exist_ok=True)
        trt = {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache, "trt_fp16_enable": fp16}
        return [(self.provider, trt), ("CUDAExecutionProvider", {}), ("CPUExecutionProvider", {})]


def engine_cache_key(artifact: Path, fp16: bool) -> str:
    """A folder name per model bytes, precision and onnxruntime build: ONNX Runtime does not invalidate its TensorRT
    engine cache when the model, its version or TensorRT's changes (its docs ask users to clear the cache then), so
    a shared folder could serve an engine built from another model or library."""
    import hashlib

    import onnxruntime

    digest = hashlib.sha256()
    with open(artifact, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(f"|fp16={fp16}|onnxruntime={onnxruntime.__version__}|{os.uname().release}".encode())
    return digest.hexdigest()[:24]


class OnnxRuntimeCudaBackend(OnnxRuntimeGpuBackend):
    """ONNX Runtime's CUDA provider, with the CPU for what CUDA does not take."""

    name = "onnxruntime-cuda"
    provider = "CUDAExecutionProvider"
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")
