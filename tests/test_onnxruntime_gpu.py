"""ONNX Runtime's TensorRT and CUDA provider backends on a machine whose onnxruntime has only the CPU.

No mock: this onnxruntime (the CPU build) really does what a GPU build does when its CUDA or TensorRT
libraries are missing on a board: it warns and runs the session on the CPU. The backends must say which
providers the build has, and refuse a session that fell back, instead of timing the CPU.
"""

from __future__ import annotations

import warnings

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgecheck.backends.base import RunOptions
from edgecheck.errors import BackendError
from edgecheck.vendors.onnxruntime.gpu import OnnxRuntimeCudaBackend, OnnxRuntimeTensorrtBackend

GPU_BUILD = "CUDAExecutionProvider" in ort.get_available_providers()


def _relu(path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.skipif(GPU_BUILD, reason="this onnxruntime has CUDA: the CPU-only reasons do not apply")
@pytest.mark.parametrize("backend, provider", [(OnnxRuntimeTensorrtBackend, "TensorrtExecutionProvider"),
                                               (OnnxRuntimeCudaBackend, "CUDAExecutionProvider")])
def test_unavailable_with_the_providers_this_build_has(backend, provider):
    found = backend().availability()
    assert not found
    assert f"has no {provider}" in found.reason and "CPUExecutionProvider" in found.reason
    assert "onnxruntime-gpu" in found.reason and "Jetson Zoo" in found.reason


@pytest.mark.skipif(GPU_BUILD, reason="this onnxruntime has CUDA: the session would not fall back")
@pytest.mark.parametrize("backend, provider", [(OnnxRuntimeTensorrtBackend, "TensorrtExecutionProvider"),
                                               (OnnxRuntimeCudaBackend, "CUDAExecutionProvider")])
def test_a_session_that_fell_back_to_the_cpu_is_refused(tmp_path, monkeypatch, backend, provider):
    monkeypatch.setenv("EDGECHECK_ORT_TRT_CACHE", str(tmp_path / "cache"))
    model = _relu(tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxruntime's own "not in available provider names"
        with pytest.raises(BackendError, match=rf"did not start {provider} \(the session uses CPUExecutionProvider\).*"
                                               "time the CPU"):
            backend().load(model, RunOptions())


def test_the_gpu_backends_are_never_the_reference():
    assert OnnxRuntimeTensorrtBackend.reference_for == () and OnnxRuntimeCudaBackend.reference_for == ()
    assert not OnnxRuntimeTensorrtBackend.deterministic


def test_the_tensorrt_providers_engine_cache_is_a_folder_per_model_and_precision(tmp_path, monkeypatch):
    # ONNX Runtime never invalidates its TensorRT engine cache: one shared folder would serve a stale engine
    pytest.importorskip("onnxruntime")
    from edgecheck.backends.base import RunOptions
    from edgecheck.vendors.onnxruntime.gpu import CACHE_DIR_ENV, OnnxRuntimeTensorrtBackend

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    first.write_bytes(b"model a")
    second.write_bytes(b"model b")
    backend = OnnxRuntimeTensorrtBackend()

    def folder(artifact, fp16="false"):
        trt = dict(backend._provider_options(RunOptions(extra={"trt_fp16_enable": fp16}), artifact))
        return trt["TensorrtExecutionProvider"]["trt_engine_cache_path"]

    assert folder(first) == folder(first) and folder(first).startswith(str(tmp_path / "cache"))
    assert len({folder(first), folder(second), folder(first, "true")}) == 3
