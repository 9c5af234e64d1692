"""Runners of a built TensorRT engine on a Jetson: the TensorRT Python bindings, or trtexec itself.

Standard library and numpy only at import (this runs in the board's worker).
- `TensorrtRunner`: the `tensorrt` module: the 8.x binding API (get_binding_*, execute_async_v2) or the
  name-based tensor API of 8.5+/10.x (num_io_tensors, set_tensor_address, execute_async_v3), chosen by
  `hasattr(engine, "num_io_tensors")`; device memory through ctypes on libcudart (no pycuda needed).
- `TrtexecRunner`: where the worker's Python has no `tensorrt` module (JetPack 4.6's bindings are for
  Python 3.6, the worker needs 3.8+): per feed it writes raw little-endian input files in the engine's
  dtype and runs `trtexec --loadEngine --loadInputs --exportOutput`, then reads the JSON. trtexec prints
  values with 6 significant digits, so its outputs are good for accuracy, coarse for tight parity.
Both time with trtexec (`native_timing` -> timing.time_engine): TensorRT's own GPU compute times.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edgecheck.backends.base import Runner
from edgecheck.vendors.tensorrt.engine import EngineBuild
from edgecheck.vendors.tensorrt.timing import as_engine_input, engine_dtype
from edgecheck.vendors.tensorrt.trtexec import BuildSettings, output_command

BACKEND = "tensorrt"
_CUDART_NAMES = ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so.10.2")
_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind


class _NativeTiming:
    """What both runners share: the engine, and timing by trtexec (TensorRT's own per-inference times)."""

    trtexec: str
    build: EngineBuild
    settings: BuildSettings

    def native_timing(self, feed: Optional[Mapping[str, np.ndarray]], warmup_runs: int, warmup_s: float,
                      samples: Optional[int], max_seconds: Optional[float], scratch: Path, timeout_s: float) -> dict:
        from edgecheck.vendors.tensorrt.timing import time_engine  # T3's, board side

        result = time_engine(self.trtexec, self.build.version, self.settings, self.build.engine,
                             dict(feed) if feed is not None else None, warmup_runs, warmup_s, samples, max_seconds,
                             Path(scratch), timeout_s)
        extra = result.get("extra") if isinstance(result, dict) else None
        if isinstance(extra, dict):
            extra.setdefault("tensorrt.engine", "cached on the board" if self.build.cached else "built on the board for this run")
            extra.setdefault("tensorrt.build_log", str(self.build.build_log))
        return result


class CudaRuntime:
    """The few libcudart calls a runner needs, through ctypes; every call's status is checked."""

    def __init__(self) -> None:
        errors = []
        self.lib = None
        for name in _CUDART_NAMES:
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError as exc:
                errors.append(str(exc))
        if self.lib is None:
            raise RuntimeError("cannot load libcudart (%s): is CUDA installed (JetPack)?" % "; ".join(errors))
        lib = self.lib
        lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        lib.cudaFree.argtypes = [ctypes.c_void_p]
        lib.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        lib.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        lib.cudaGetErrorString.argtypes = [ctypes.c_int]
        for call in ("cudaMalloc", "cudaFree", "cudaMemcpy", "cudaStreamCreate", "cudaStreamSynchronize",
                     "cudaStreamDestroy"):
            getattr(lib, call).restype = ctypes.c_int

    def check(self, status: int, what: str) -> None:
        if status != 0:
            said = self.lib.cudaGetErrorString(status)
            raise RuntimeError("%s failed: CUDA error %d (%s)" % (what, status, said.decode() if said else "?"))

    def malloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(pointer), max(int(nbytes), 1)), "cudaMalloc(%d)" % nbytes)
        return int(pointer.value or 0)

    def free(self, pointer: int) -> None:
        self.check(self.lib.cudaFree(ctypes.c_void_p(pointer)), "cudaFree")

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        self.check(self.lib.cudaMemcpy(ctypes.c_void_p(pointer), array.ctypes.data_as(ctypes.c_void_p), array.nbytes,
                                       _HOST_TO_DEVICE), "cudaMemcpy to the device")

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        self.check(self.lib.cudaMemcpy(array.ctypes.data_as(ctypes.c_void_p), ctypes.c_void_p(pointer), array.nbytes,
                                       _DEVICE_TO_HOST), "cudaMemcpy to the host")

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        return int(handle.value or 0)

    def synchronize(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def destroy(self, stream: int) -> None:
        self.check(self.lib.cudaStreamDestroy(ctypes.c_void_p(stream)), "cudaStreamDestroy")


class TensorrtRunner(_NativeTiming, Runner):
    """The engine through the TensorRT Python bindings (8.x binding API or 8.5+/10.x tensor API)."""

    def __init__(self, artifact: Path, build: EngineBuild, settings: BuildSettings, trtexec: str):
        import tensorrt as trt

        self.backend, self.artifact, self.build, self.settings, self.trtexec = BACKEND, artifact, build, settings, trtexec
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if settings.dla_core is not None:
            self._runtime.DLA_core = settings.dla_core
        self._engine = self._runtime.deserialize_cuda_engine(build.engine.read_bytes())
        if self._engine is None:
            raise RuntimeError("TensorRT %s could not deserialize %s (built by another TensorRT version?)"
                               % (trt.__version__, build.engine))
        self._context = self._engine.create_execution_context()
        self.tensor_api = hasattr(self._engine, "num_io_tensors")
        self.api = "tensor API (num_io_tensors, execute_async_v3)" if self.tensor_api else "binding API (execute_async_v2)"
        io = self._io()
        self.input_names = tuple(name for name, is_input, _ in io if is_input)
        self.output_names = tuple(name for name, is_input, _ in io if not is_input)
        self._dtypes = {name: dtype for name, _, dtype in io}
        self._cuda = CudaRuntime()
        self._stream = self._cuda.stream()

    def _io(self) -> List[Tuple[str, bool, Any]]:
        trt, engine = self._trt, self._engine
        if self.tensor_api:
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            return [(n, engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT, np.dtype(trt.nptype(engine.get_tensor_dtype(n))))
                    for n in names]
        return [(engine.get_binding_name(i), bool(engine.binding_is_input(i)),
                 np.dtype(trt.nptype(engine.get_binding_dtype(i)))) for i in range(engine.num_bindings)]

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, context = self._cuda, self._context
        arrays = {n: np.ascontiguousarray(feed[n], dtype=self._dtypes[n]) for n in self.input_names}
        pointers: Dict[str, int] = {}
        try:
            for name, array in arrays.items():
                pointers[name] = cuda.malloc(array.nbytes)
                cuda.to_device(pointers[name], array)
            outputs: Dict[str, np.ndarray] = {}
            if self.tensor_api:
                for name, array in arrays.items():
                    if not context.set_input_shape(name, tuple(array.shape)):
                        raise RuntimeError("the engine does not take input %s of shape %s" % (name, list(array.shape)))
                    context.set_tensor_address(name, pointers[name])
                for name in self.output_names:
                    outputs[name] = np.empty(tuple(context.get_tensor_shape(name)), dtype=self._dtypes[name])
                    pointers[name] = cuda.malloc(outputs[name].nbytes)
                    context.set_tensor_address(name, pointers[name])
                ok = context.execute_async_v3(stream_handle=self._stream)
            else:
                engine = self._engine
                bindings = [0] * engine.num_bindings
                for name, array in arrays.items():
                    index = engine.get_binding_index(name)
                    if not context.set_binding_shape(index, tuple(array.shape)):
                        raise RuntimeError("the engine does not take input %s of shape %s" % (name, list(array.shape)))
                    bindings[index] = pointers[name]
                for name in self.output_names:
                    index = engine.get_binding_index(name)
                    outputs[name] = np.empty(tuple(context.get_binding_shape(index)), dtype=self._dtypes[name])
                    pointers[name] = bindings[index] = cuda.malloc(outputs[name].nbytes)
                ok = context.execute_async_v2(bindings=bindings, stream_handle=self._stream)
            if not ok:
                raise RuntimeError("TensorRT's execute_async returned false (see the worker's log for TensorRT's error)")
            cuda.synchronize(self._stream)
            for name, array in outputs.items():
                cuda.to_host(array, pointers[name])
            return outputs
        finally:
            for pointer in pointers.values():
                cuda.free(pointer)

    def close(self) -> None:
        if getattr(self, "_stream", None):
            self._cuda.destroy(self._stream)
            self._stream = 0
        self._context = self._engine = self._runtime = None


class TrtexecRunner(_NativeTiming, Runner):
    """The engine through trtexec, one process per feed: where the worker's Python has no `tensorrt` module."""

    def __init__(self, artifact: Path, build: EngineBuild, settings: BuildSettings, trtexec: str,
                 inputs: List[Tuple[str, str]], outputs: List[Tuple[str, str]], timeout_s: float = 600.0):
        self.backend, self.artifact, self.build, self.settings, self.trtexec = BACKEND, artifact, build, settings, trtexec
        self.api = "trtexec --loadInputs/--exportOutput"
        self.input_names = tuple(name for name, _ in inputs)
        self.output_names = tuple(name for name, _ in outputs)
        self._in_dtypes = {name: engine_dtype(dtype, build.version) for name, dtype in inputs}
        self._out_dtypes = {name: np.dtype(dtype) for name, dtype in outputs}
        self._timeout_s = timeout_s

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgecheck.vendors.tensorrt.exports import read_output  # T1's reader of --exportOutput

        with tempfile.TemporaryDirectory(prefix="edgecheck-trtexec-") as folder:
            files, shapes = {}, {}
            for position, name in enumerate(self.input_names):
                array = as_engine_input(name, feed[name], self._in_dtypes[name])
                path = os.path.join(folder, "input%d.bin" % position)
                array.tofile(path)
                files[name] = path
                if name in self.settings.shapes:
                    shapes[name] = tuple(int(d) for d in array.shape)
            export = os.path.join(folder, "output.json")
            argv = output_command(self.trtexec, self.build.version, self.settings, str(self.build.engine), files,
                                  export, shapes or None)
            code, log = _run(argv, self._timeout_s)
            if code != 0 or not os.path.isfile(export):
                errors = [line.strip() for line in log.splitlines() if "[E]" in line] or log.strip().splitlines()[-5:]
                raise RuntimeError("trtexec failed to run the engine (exit status %s): %s" % (code, " | ".join(errors)[-2000:]))
            with open(export, encoding="utf-8") as handle:
                values = read_output(handle.read(), "trtexec --exportOutput (%s)" % os.path.basename(export))
        missing = [name for name in self.output_names if name not in values]
        if missing:
            raise RuntimeError("trtexec's --exportOutput has no output %s (it has %s)" % (missing, sorted(values)))
        return {name: np.asarray(values[name]).astype(self._out_dtypes[name]) for name in self.output_names}


def _run(argv: List[str], timeout_s: float) -> Tuple[Optional[int], str]:
    """trtexec in its own process group (killed whole past the limit); its exit status and its log."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        out, _ = process.communicate()
        return None, "[E] trtexec did not finish within %g s (killed)\n" % timeout_s + out.decode("utf-8", "replace")
    return process.returncode, out.decode("utf-8", "replace")
