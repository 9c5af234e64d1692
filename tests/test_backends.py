"""The backend registry and contract, the ONNX Runtime backend, and safe model loading."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import INT8_SPEC, make_classifier
from onnx import TensorProto

from edgecheck.backends import Availability, Backend, RunOptions, Runner, check_available, get_backend, known_backends
from edgecheck.backends import register_backend
from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend
from edgecheck.backends.registry import unregister_backend
from edgecheck.errors import BackendError, BackendUnavailable, EdgecheckError, ModelError
from edgecheck.model import inspect_onnx, load_onnx


class EchoRunner(Runner):
    def __init__(self, artifact: Path, fail: Exception | None = None):
        self.backend = "test-echo"
        self.artifact = artifact
        self.input_names = ("a", "b")
        self.output_names = ("sum",)
        self.fail = fail

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.fail is not None:
            raise self.fail
        return {"sum": feed["a"] + feed["b"]}


class EchoBackend(Backend):
    name = "test-echo"
    suffixes = (".echo",)

    def availability(self) -> Availability:
        return Availability(True)

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        if artifact.name == "explode.echo":
            raise RuntimeError("the runtime blew up")
        return EchoRunner(artifact)


class UnavailableBackend(EchoBackend):
    name = "test-unavailable"

    def availability(self) -> Availability:
        return Availability(False, "needs the vendor SDK 2.0; install it with vendor-setup")


@pytest.fixture
def registered() -> Iterator[None]:
    register_backend(EchoBackend)
    register_backend(UnavailableBackend)
    try:
        yield
    finally:
        unregister_backend(EchoBackend.name)
        unregister_backend(UnavailableBackend.name)


@pytest.fixture
def classifier(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    path = tmp_path / "clf.onnx"
    weight, bias = make_classifier(path, features=5, classes=4, seed=3)
    return path, weight, bias


# ---------------------------------------------------------------- registry


def test_onnxruntime_backend_reproduces_numpy(classifier):
    path, weight, bias = classifier
    backend = get_backend("onnxruntime")
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.availability()
    assert check_available("onnxruntime").name == "onnxruntime"
    assert backend.facts()["provider"] == "CPUExecutionProvider"
    x = np.random.default_rng(7).uniform(-1, 1, size=(6, 5)).astype(np.float32)
    with backend.load(path, RunOptions(threads=1)) as runner:
        assert runner.input_names == ("x",) and runner.output_names == ("scores",)
        outputs = runner.infer({"x": x})
    assert set(outputs) == {"scores"}
    np.testing.assert_allclose(outputs["scores"], x @ weight + bias, rtol=1e-5, atol=1e-5)
    assert outputs["scores"].dtype == np.float32


def test_unknown_backend_names_the_installed_ones():
    assert "onnxruntime" in known_backends()
    with pytest.raises(BackendUnavailable) as info:
        get_backend("nope")
    assert info.value.backend == "nope"
    assert "no backend of that name is installed" in info.value.reason
    assert "onnxruntime" in info.value.reason
    assert "edgecheck.backends" in info.value.reason  # says how a plugin adds one
    assert str(info.value).startswith("nope cannot run here: ")
    assert isinstance(info.value, EdgecheckError)


def test_registered_backend_is_known_and_unregistered_is_gone(registered, tmp_path):
    assert {"test-echo", "test-unavailable", "onnxruntime"} <= set(known_backends())
    backend = get_backend("test-echo")
    assert isinstance(backend, EchoBackend)
    assert check_available("test-echo").name == "test-echo"
    unregister_backend("test-echo")
    assert "test-echo" not in known_backends()
    with pytest.raises(BackendUnavailable):
        get_backend("test-echo")


def test_register_backend_is_a_decorator():
    try:
        @register_backend
        class Decorated(EchoBackend):
            name = "test-decorated"

        assert Decorated.name == "test-decorated"
        assert "test-decorated" in known_backends()
    finally:
        unregister_backend("test-decorated")
    assert "test-decorated" not in known_backends()


def test_unavailable_backend_gives_its_reason(registered):
    assert isinstance(get_backend("test-unavailable"), UnavailableBackend)  # it exists
    with pytest.raises(BackendUnavailable) as info:
        check_available("test-unavailable")
    assert info.value.backend == "test-unavailable"
    assert info.value.reason == "needs the vendor SDK 2.0; install it with vendor-setup"


def test_availability_is_falsy_when_not_ok():
    assert not Availability(False, "x") and Availability(True)


# ---------------------------------------------------------------- contract


def test_load_refuses_a_wrong_suffix(registered, tmp_path):
    with pytest.raises(BackendError) as info:
        get_backend("test-echo").load(tmp_path / "model.onnx")
    assert info.value.artifact.name == "model.onnx"
    assert "model.onnx" in str(info.value) and ".echo" in str(info.value)
    assert info.value.step == "loading"
    with pytest.raises(BackendError) as info:
        get_backend("onnxruntime").load(tmp_path / "model.tflite")
    assert "model.tflite" in str(info.value) and ".tflite" in info.value.reason


def test_load_wraps_the_runtime_error(registered, tmp_path):
    with pytest.raises(BackendError) as info:
        get_backend("test-echo").load(tmp_path / "explode.echo")
    assert info.value.reason == "RuntimeError: the runtime blew up"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_infer_checks_input_names(registered, tmp_path):
    runner = get_backend("test-echo").load(tmp_path / "m.echo")
    one = np.ones(2)
    assert np.array_equal(runner.infer({"a": one, "b": one})["sum"], 2 * one)
    with pytest.raises(BackendError) as info:
        runner.infer({"a": one, "c": one})
    assert info.value.step == "running"
    assert "missing ['b']" in info.value.reason and "unknown ['c']" in info.value.reason
    assert "m.echo" in str(info.value)
    with pytest.raises(BackendError) as extra:  # every input given, plus one the model does not have
        runner.infer({"a": one, "b": one, "c": one})
    assert "missing []" in extra.value.reason and "unknown ['c']" in extra.value.reason


def test_infer_wraps_the_runtime_error(tmp_path):
    runner = EchoRunner(tmp_path / "m.echo", fail=RuntimeError("out of device memory"))
    with pytest.raises(BackendError) as info:
        runner.infer({"a": np.ones(1), "b": np.ones(1)})
    assert info.value.reason == "RuntimeError: out of device memory (fed: a [1] float64, b [1] float64)"
    # running out of the worker's memory is the worker's to report, with its limit
    with pytest.raises(MemoryError):
        EchoRunner(tmp_path / "m.echo", fail=MemoryError("no more")).infer({"a": np.ones(1), "b": np.ones(1)})
    passthrough = BackendError("test-echo", "m.echo", "running", "mine")
    with pytest.raises(BackendError) as again:
        EchoRunner(tmp_path / "m.echo", fail=passthrough).infer({"a": np.ones(1), "b": np.ones(1)})
    assert again.value is passthrough


def test_onnxruntime_runner_with_a_wrong_input_name(classifier):
    path, _, _ = classifier
    with get_backend("onnxruntime").load(path) as runner:
        with pytest.raises(BackendError) as info:
            runner.infer({"image": np.ones((1, 5), np.float32)})
    assert "missing ['x']" in info.value.reason and "unknown ['image']" in info.value.reason
    assert info.value.backend == "onnxruntime" and info.value.artifact == path


def test_onnxruntime_runtime_failure_is_a_backend_error(classifier):
    path, _, _ = classifier
    with get_backend("onnxruntime").load(path) as runner:
        with pytest.raises(BackendError) as info:
            runner.infer({"x": np.ones((1, 3), np.float32)})  # 3 features, the model takes 5
    assert info.value.step == "running" and info.value.reason


@pytest.mark.parametrize("content", ["garbage", "empty", "truncated", "missing"])
def test_onnxruntime_load_of_a_broken_file_is_a_backend_error(classifier, content):
    path, _, _ = classifier
    broken = path.with_name(f"{content}.onnx")
    raw = path.read_bytes()
    if content != "missing":
        broken.write_bytes({"garbage": b"\x08\x01garbage that is not protobuf" * 10, "empty": b"",
                            "truncated": raw[: len(raw) // 2]}[content])
    with pytest.raises(BackendError) as info:
        get_backend("onnxruntime").load(broken)
    assert info.value.backend == "onnxruntime" and info.value.step == "loading"
    assert f"{content}.onnx" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)


# ---------------------------------------------------------------- model files


def test_inspect_classifier(classifier):
    path, weight, bias = classifier
    info = inspect_onnx(path)
    assert info.format == "onnx"
    assert info.parameters == weight.size + bias.size == 5 * 4 + 4
    assert [(t.name, t.dtype, t.shape) for t in info.inputs] == [("x", "float32", ("N", 5))]
    assert [(t.name, t.dtype, t.shape) for t in info.outputs] == [("scores", "float32", ("N", 4))]
    assert info.inputs[0].shape_text() == "[N, 5]" and info.inputs[0].dynamic_dims == [0]
    assert info.input("x") is info.inputs[0] and info.input("W") is None  # initializers are not inputs
    assert info.output("scores") is info.outputs[0]
    assert info.size_bytes == path.stat().st_size
    assert info.opsets == {"ai.onnx": 13}
    assert info.op_counts == {"Add": 1, "MatMul": 1}
    assert len(info.sha256) == 64 and info.sha256 == inspect_onnx(path).sha256


def test_inspect_fixed_batch(tmp_path):
    make_classifier(tmp_path / "fixed.onnx", batch=2)
    info = inspect_onnx(tmp_path / "fixed.onnx")
    assert info.inputs[0].shape == (2, 4) and info.inputs[0].dynamic_dims == []


@pytest.mark.parametrize("content, message", [
    (b"\x08\x01garbage that is not protobuf" * 10, "not a valid ONNX model"),
    (b"", "empty"),
    (None, "not a valid ONNX model"),
    (b"plain text, not a model\n", "not a valid ONNX model"),
])
def test_broken_model_files_are_model_errors_naming_the_path(classifier, content, message):
    path, _, _ = classifier
    raw = path.read_bytes()
    broken = path.with_name("broken.onnx")
    broken.write_bytes(raw[: len(raw) // 2] if content is None else content)
    for function in (load_onnx, inspect_onnx):
        with pytest.raises(ModelError) as info:
            function(broken)
        assert info.value.path == broken
        assert str(info.value).startswith(f"{broken}: ")
        assert message in info.value.reason


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError) as info:
        inspect_onnx(tmp_path / "gone.onnx")
    assert info.value.path == tmp_path / "gone.onnx" and "not found" in info.value.reason


def test_model_rejected_by_the_checker(tmp_path):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("NoSuchOp", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError) as info:
        inspect_onnx(path)
    assert info.value.path == path and "checker rejected" in info.value.reason


def _with_external_weight(source: Path, target: Path, location: str) -> None:
    """Copy the classifier with its weight W moved to external data at `location` (no data written)."""
    model = onnx.load(str(source))
    tensor = next(t for t in model.graph.initializer if t.name == "W")
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    target.write_bytes(model.SerializeToString())


def _weight_bytes(source: Path) -> bytes:
    return next(t for t in onnx.load(str(source)).graph.initializer if t.name == "W").raw_data


def test_external_data_beside_the_model_is_fine(classifier, tmp_path):
    path, weight, bias = classifier
    folder = tmp_path / "ext"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(_weight_bytes(path))
    _with_external_weight(path, folder / "model.onnx", "weights.bin")
    info = inspect_onnx(folder / "model.onnx")
    assert info.parameters == weight.size + bias.size
    assert info.size_bytes == (folder / "model.onnx").stat().st_size + (folder / "weights.bin").stat().st_size
    x = np.ones((2, 5), np.float32)
    with get_backend("onnxruntime").load(folder / "model.onnx") as runner:
        np.testing.assert_allclose(runner.infer({"x": x})["scores"], x @ weight + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("location", ["../outside.bin", "sub/../../outside.bin", "ABSOLUTE", "link.bin"])
def test_external_data_outside_the_model_folder_is_refused(classifier, tmp_path, location):
    path, _, _ = classifier
    outside = tmp_path / "outside.bin"
    outside.write_bytes(_weight_bytes(path))  # it exists: the refusal is about where, not whether
    folder = tmp_path / "ext"
    folder.mkdir()
    if location == "ABSOLUTE":
        location = str(outside)
    if location == "link.bin":
        os.symlink(outside, folder / "link.bin")
    _with_external_weight(path, folder / "model.onnx", location)
    with pytest.raises(ModelError) as info:
        inspect_onnx(folder / "model.onnx")
    assert info.value.path == folder / "model.onnx"
    assert "points outside" in info.value.reason and location in info.value.reason


def test_missing_external_data(classifier, tmp_path):
    path, _, _ = classifier
    _with_external_weight(path, tmp_path / "model.onnx", "gone.bin")
    with pytest.raises(ModelError) as info:
        load_onnx(tmp_path / "model.onnx")
    assert "'gone.bin' is missing" in info.value.reason


def test_a_backend_whose_availability_raises_skips_with_the_reason(pytester, spec_project):
    spec_project(INT8_SPEC.replace("[onnxruntime]", "[onnxruntime, flaky]"))
    pytester.makeconftest("""
        from edgecheck.backends import register_backend
        from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend

        @register_backend
        class Flaky(OnnxRuntimeBackend):
            name = "flaky"

            def availability(self):
                raise OSError("driver not loaded")
    """)
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(passed=5, skipped=6)
    result.stdout.fnmatch_lines(["*flaky cannot run here: availability() raised OSError: driver not loaded*"])


def test_backends_registered_in_one_session_do_not_leak_into_the_next(pytester, spec_project):
    test_a_backend_whose_availability_raises_skips_with_the_reason(pytester, spec_project)
    (pytester.path / "conftest.py").unlink()
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)  # 'flaky' is unknown again: the spec is refused
    result.stdout.fnmatch_lines(["*unknown backend 'flaky'*"])
