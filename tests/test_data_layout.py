"""Inputs whose first axis is not the batch, inputs fixed for every sample, and hostile data files
(issue 14: a recurrent model with input [1, 512], state [2, 1, 128] and a scalar sample rate; .npz
bombs, headers claiming terabytes, text posing as .npz, pickles)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import INT8_SPEC, junit_properties, make_classifier, make_eval_data

from edgecheck import npzfile
from edgecheck.errors import DataError


def make_recurrent(path: Path, batch: int | str = 1) -> None:
    """A voice-activity-shaped model: input [B, 512], state [2, B, 128] (layers first), sr int64 scalar;
    outputs scores [B, 2] and the next state [2, B, 128]. Every output depends on every input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["mm"]),
        helper.make_node("ReduceMean", ["state"], ["m_state"], axes=[0, 2], keepdims=0),  # [B]
        helper.make_node("Unsqueeze", ["m_state", "axis1"], ["m_state2"]),  # [B, 1]
        helper.make_node("Cast", ["sr"], ["sr_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["sr_f", "scale"], ["sr_s"]),
        helper.make_node("Add", ["mm", "m_state2"], ["a"]),
        helper.make_node("Add", ["a", "sr_s"], ["output"]),
        helper.make_node("ReduceMean", ["input"], ["m_in"], axes=[1], keepdims=1),  # [B, 1]
        helper.make_node("Mul", ["state", "half"], ["s_half"]),
        helper.make_node("Add", ["s_half", "m_in"], ["stateN"]),  # [2, B, 128] + [B, 1]
    ]
    graph = helper.make_graph(
        nodes, "recurrent",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 512]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, batch, 128]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 2]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, batch, 128])],
        [numpy_helper.from_array(rng.normal(size=(512, 2)).astype(np.float32), "W"),
         numpy_helper.from_array(np.array([1], np.int64), "axis1"),
         numpy_helper.from_array(np.float32(1e-4), "scale"),
         numpy_helper.from_array(np.float32(0.5), "half")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _recurrent_data(samples: int, sr: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {"input": rng.uniform(-1, 1, (samples, 512)).astype(np.float32),
              "state": rng.uniform(-1, 1, (2, samples, 128)).astype(np.float32)}  # samples along axis 1
    if sr:
        arrays["sr"] = np.array(16000, np.int64)
    return arrays


RECURRENT_SPEC = """
edgecheck: 1
model: {path: ../models/vad.onnx}
inputs:
  state: {batch_axis: 1}
  sr: {fixed: 16000}
data:
  calibration: ../models/cal.npz
  parity: ../models/par.npz
compress: [int8-static]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      parity: {rel_l2: 0.5}
"""


def test_a_recurrent_model_with_a_layers_first_state_and_a_fixed_scalar_calibrates_and_checks(pytester, spec_project):
    from conftest import junit_properties

    models = pytester.path / "models"
    make_recurrent(models / "vad.onnx")
    np.savez(models / "cal.npz", **_recurrent_data(12))
    np.savez(models / "par.npz", **_recurrent_data(8))
    spec_project(RECURRENT_SPEC)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=r.xml")
    result.assert_outcomes(passed=1)
    props = junit_properties(pytester.path / "r.xml")
    assert props["host-onnxruntime-int8-static-parity"]["edge.inputs"] == "par.npz (8 of 8 samples)"
    assert props["host-onnxruntime-int8-static-parity"]["edge.recipe.calibration"] == "cal.npz (12 of 12 samples)"


def test_without_the_batch_axis_the_spec_error_says_which_inputs_disagree_and_how_to_say_it(pytester, spec_project):
    models = pytester.path / "models"
    make_recurrent(models / "vad.onnx")
    np.savez(models / "cal.npz", **_recurrent_data(12))
    np.savez(models / "par.npz", **_recurrent_data(8))
    spec_project(RECURRENT_SPEC.replace("  state: {batch_axis: 1}\n", ""))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["invalid spec: *model.yaml:3: inputs: the model's inputs disagree on the batch size "
                                 "('input' 1 on axis 0, 'state' 2 on axis 0): set inputs: {state: {batch_axis: 1}} in the spec"])


def test_a_data_error_says_what_edgecheck_feeds_per_input(pytester, spec_project):
    models = pytester.path / "models"
    make_recurrent(models / "vad.onnx")
    np.savez(models / "cal.npz", **_recurrent_data(12))
    bad = _recurrent_data(8)
    bad["state"] = bad["state"].transpose(1, 0, 2)  # samples first: the wrong layout for this spec
    np.savez(models / "par.npz", **bad)
    spec_project(RECURRENT_SPEC)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["invalid spec: *model.yaml:8: data.parity: *par.npz: array for input 'state' has "
                                 "shape ?8, 2, 128?; the model expects ?2, 1, 128? with samples along axis 1; "
                                 "edgecheck feeds input ?8, 512? float32, state ?8, 2, 128? float32 (samples on "
                                 "axis 1), sr ?? int64 (fixed); the model takes input ?1, 512? float32, state "
                                 "?2, 1, 128? float32, sr ?? int64"])


def test_fixed_data_needs_the_array_in_the_file(pytester, spec_project):
    models = pytester.path / "models"
    make_recurrent(models / "vad.onnx")
    np.savez(models / "cal.npz", **_recurrent_data(12, sr=True))
    np.savez(models / "par.npz", **_recurrent_data(8))  # no sr
    spec_project(RECURRENT_SPEC.replace("sr: {fixed: 16000}", "sr: {fixed: data}"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["invalid spec: *data.parity: *par.npz: no array for model input 'sr' (the spec "
                                 "says inputs.sr.fixed: data: add the array to the file, or give the value itself, a "
                                 "number: inputs: {sr: {fixed: <a number>}}) (arrays: input, state)*"])


def test_layout_reaches_calibration_feeds_through_the_prepared_file(tmp_path):
    """Recipes read calibration through data.calibration_feeds, without the spec: the prepared
    file carries the batch axes and fixed values; feeds split along each input's own batch axis."""
    from edgecheck.data import calibration_feeds, prepare_calibration
    from edgecheck.formats import inspect_model
    from edgecheck.spec.loader import load_spec_text

    make_recurrent(tmp_path / "vad.onnx", batch="N")
    np.savez(tmp_path / "cal.npz", **_recurrent_data(40))
    loaded = load_spec_text(RECURRENT_SPEC.replace("../models/", "").replace("  parity: par.npz\n", ""),
                            tmp_path / "spec.yaml", tmp_path)
    model = inspect_model(tmp_path / "vad.onnx")
    prepared = prepare_calibration(loaded, model, tmp_path / "scratch")
    assert prepared.parent.parent == tmp_path / "scratch" and prepared.name == "cal.npz"
    again = prepare_calibration(loaded, model, tmp_path / "again")
    assert prepared.read_bytes() == again.read_bytes()  # content only: cached artifacts keep their keys
    feeds = calibration_feeds(model, prepared, None)
    assert [f["state"].shape for f in feeds.feeds] == [(2, 32, 128), (2, 8, 128)]
    assert [f["input"].shape for f in feeds.feeds] == [(32, 512), (8, 512)]
    assert all(f["sr"].shape == () and f["sr"] == 16000 and f["sr"].dtype == np.int64 for f in feeds.feeds)
    samples = list(feeds.samples())
    assert len(samples) == 40 and samples[3]["state"].shape == (2, 1, 128)
    np.testing.assert_array_equal(samples[3]["state"][:, 0], _recurrent_data(40)["state"][:, 3])
    assert samples[3]["sr"] == 16000
    # a spec that feeds with the defaults passes the user's own file, untouched
    plain = load_spec_text("edgecheck: 1\nmodel: {path: vad.onnx}\ndata: {calibration: cal.npz}\n"
                           "targets: {host: {budgets: {size_mb: 1}}}\n", tmp_path / "plain.yaml", tmp_path)
    assert prepare_calibration(plain, model, tmp_path / "s2") == tmp_path / "cal.npz"


def test_synthetic_inputs_follow_the_batch_axis_and_fixed_values(tmp_path):
    from edgecheck.data import first_sample
    from edgecheck.data import synthetic_set
    from edgecheck.formats import inspect_model
    from edgecheck.spec.loader import load_spec_text

    make_recurrent(tmp_path / "vad.onnx", batch="N")
    loaded = load_spec_text("edgecheck: 1\nmodel: {path: vad.onnx}\ninputs:\n  state: {batch_axis: 1}\n"
                            "  sr: {fixed: 8000}\ndata: {parity_samples: 3}\n"
                            "targets: {host: {budgets: {size_mb: 1}}}\n", tmp_path / "s.yaml", tmp_path)
    inputs = synthetic_set(loaded, inspect_model(tmp_path / "vad.onnx"), 3)
    assert inputs.synthetic and len(inputs.feeds) == 3
    feed = first_sample(inputs)
    assert feed["state"].shape == (2, 1, 128) and feed["input"].shape == (1, 512) and feed["sr"] == 8000


@pytest.mark.parametrize("fields, message", [
    ("{fixed: 16000, batch_axis: 1}", "a fixed input has no batch_axis"),
    ("{fixed: abc}", "fixed is a finite number, a list of numbers (an array), or 'data'"),
    ("{range: [0.2, 0.8], dtype: int64}", "range [0.2, 0.8] holds no integer, and the input is int64"),
])
def test_layout_fields_are_checked_when_the_spec_loads(tmp_path, fields, message):
    from edgecheck.errors import SpecError
    from edgecheck.spec.loader import load_spec_text

    text = f"edgecheck: 1\nmodel: {{path: m.onnx}}\ninputs:\n  x: {fields}\ntargets: {{host: {{budgets: {{size_mb: 1}}}}}}\n"
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_spec_text(text, tmp_path / "s.yaml", tmp_path)


def test_a_fixed_value_that_does_not_fit_the_input_is_a_spec_error(tmp_path):
    from edgecheck.errors import SpecError
    from edgecheck.formats import inspect_model
    from edgecheck.plan import validate_against_model
    from edgecheck.spec.loader import load_spec_text

    make_recurrent(tmp_path / "vad.onnx")
    for fixed, message in (("16000.5", "is not a whole number"), ("[1, 2]", "has shape [2]; the model's input is []"),
                           ("99999999999999999999", "outside int64's range"),
                           ("true", "true/false is not a number; the input is int64"),
                           ("[[1, 2], [3]]", "its lists are not all of one length")):
        loaded = load_spec_text(f"edgecheck: 1\nmodel: {{path: vad.onnx}}\ninputs:\n  state: {{batch_axis: 1}}\n"
                                f"  sr: {{fixed: {fixed}}}\ntargets: {{host: {{budgets: {{size_mb: 1}}}}}}\n",
                                tmp_path / "s.yaml", tmp_path)
        with pytest.raises(SpecError, match="inputs.sr.fixed") as caught:
            validate_against_model(loaded, inspect_model(tmp_path / "vad.onnx"))
        assert message in str(caught.value) and caught.value.line == 5


# --- hostile files: bounded memory and time in the session's own process ---------------------------

def _npz_with_header(path: Path, header: dict, payload: bytes = b"") -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue() + payload)


def test_an_npy_header_claiming_16_tib_is_one_named_error(tmp_path):
    path = tmp_path / "huge.npz"
    _npz_with_header(path, {"descr": "<f4", "fortran_order": False, "shape": (2**42,)})
    with pytest.raises(DataError) as caught:
        npzfile.load_npz(path)
    assert str(caught.value) == (f"{path}: array 'x' claims shape [4398046511104] float32, 16 TiB, over data.max_mb "
                                 "(1024 MiB)")


def test_a_header_claiming_more_than_its_member_holds_is_refused(tmp_path):
    path = tmp_path / "short.npz"
    _npz_with_header(path, {"descr": "<f4", "fortran_order": False, "shape": (1000,)}, b"\0" * 40)
    with pytest.raises(DataError, match=r"claims shape \[1000\] float32 \(4000 bytes\), and its member holds \d+ "
                                        "bytes: the file is truncated"):
        npzfile.load_npz(path)


def test_a_small_file_that_inflates_past_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros(2**20, np.float32))  # 4 MiB of zeros in about 4 KiB
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(DataError, match=r"bomb.npz: its arrays take 4 MiB uncompressed \(the file is [\d.]+ KiB\), "
                                        r"over data.max_mb \(1 MiB\): raise data.max_mb"):
        npzfile.load_npz(path, max_mb=1)


def test_a_data_file_is_read_once_per_process_errors_included(tmp_path, monkeypatch):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    np.savez(good, x=np.arange(6.0))
    bad.write_text("hello, not a zip\n")
    reads = []
    real = npzfile._read
    monkeypatch.setattr(npzfile, "_read", lambda path, limit: reads.append(path) or real(path, limit))
    first, second = npzfile.load_npz(good), npzfile.load_npz(good)
    assert first["x"] is second["x"] and not first["x"].flags.writeable
    for _ in range(3):
        with pytest.raises(DataError, match="not an .npz file"):
            npzfile.load_npz(bad)
    assert reads == [good, bad]
    np.savez(good, x=np.arange(7.0))  # a changed file is read again
    assert npzfile.load_npz(good)["x"].shape == (7,)


def test_every_data_file_of_a_dozen_specs_read_at_collection_serves_their_checks(tmp_path, monkeypatch):
    """Collection reads each spec's evaluation and calibration files (validation), then the checks read them again:
    a memo of fewer files than that evicted each one before its checks came (every file read twice, and under
    xdist twice per worker, all workers at once)."""
    npzfile._memo.clear()
    paths = [tmp_path / f"spec-{index}-{kind}.npz" for index in range(12) for kind in ("evaluation", "calibration")]
    for path in paths:
        np.savez(path, x=np.arange(4.0))
    reads = []
    real = npzfile._read
    monkeypatch.setattr(npzfile, "_read", lambda path, limit: reads.append(path) or real(path, limit))
    for _ in ("collection", "checks"):
        for path in paths:
            npzfile.load_npz(path)
    assert reads == paths
    npzfile._memo.clear()


@pytest.mark.parametrize("content, message", [
    (b"hello, this is text\n", "not an .npz file (a zip archive of .npy arrays): starts with b'hell'"),
    (np.lib.format.magic(1, 0) + b"rest", "not an .npz file (a zip archive of .npy arrays): an .npy array"),
    (b"PK\x03\x04garbage", "not a readable .npz file"),
])
def test_what_is_not_an_npz_is_named_so(tmp_path, content, message):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        npzfile.load_npz(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_two_arrays_of_one_name_are_refused_not_shifted_onto_other_names(tmp_path):
    """zipfile writes a second member of the same name with only a warning; reading by position then
    gave 'labels' the second 'x' array."""
    import io
    import warnings
    import zipfile

    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, array in (("x", np.zeros((3, 2), np.float32)), ("x", np.ones((3, 2), np.float32)),
                            ("labels", np.arange(3))):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    with pytest.raises(DataError, match="holds two arrays named 'x'"):
        npzfile.load_npz(path)


def test_pickled_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="array 'x' holds Python objects .* edgecheck never unpickles"):
        npzfile.load_npz(path)


def test_a_fifo_is_refused_without_waiting_on_it(tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        npzfile.load_npz(fifo)


def test_a_hostile_data_file_in_a_spec_is_one_spec_error(pytester, spec_project):
    _npz_with_header(pytester.path / "models" / "huge.npz", {"descr": "<f4", "fortran_order": False, "shape": (2**42,)})
    spec_project("""
    edgecheck: 1
    model: {path: ../models/clf.onnx}
    data:
      parity: ../models/huge.npz
    targets:
      host: {backends: [onnxruntime], budgets: {parity: {rel_l2: 0.01}}}
    """)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["invalid spec: *model.yaml:4: data.parity: *huge.npz: array 'x' claims shape "
                                 "?4398046511104? float32, 16 TiB, over data.max_mb (1024 MiB)"])
    assert "Traceback" not in result.stdout.str()


def test_a_runtime_failure_says_what_was_fed(tmp_path):
    """The issue's ORT 'Attempting to broadcast an axis...' came with no word of the shapes fed."""
    from edgecheck.backends import get_backend
    from edgecheck.errors import BackendError

    make_recurrent(tmp_path / "vad.onnx")
    feed = {"input": np.zeros((1, 512), np.float32), "state": np.zeros((2, 2, 128), np.float32),
            "sr": np.array(16000, np.int64)}
    with get_backend("onnxruntime").load(tmp_path / "vad.onnx") as runner:
        with pytest.raises(BackendError) as caught:
            runner.infer(feed)
    assert caught.value.reason.endswith("(fed: input [1, 512] float32, state [2, 2, 128] float32, sr [] int64)")


@pytest.mark.parametrize("batch, used", [(64, 64), (48, 96)])
def test_models_with_a_fixed_batch_over_32_get_whole_batches(pytester, spec_project, batch, used):
    make_eval_data(pytester.path / "models" / "b.npz",
                   make_classifier(pytester.path / "models" / "b.onnx", batch=batch), samples=100)
    spec_project(INT8_SPEC.replace("clf.onnx", "b.onnx").replace("eval.npz", "b.npz"))
    pytester.runpytest("specs", "--junitxml=b.xml").assert_outcomes(passed=5)
    properties = junit_properties(pytester.path / "b.xml", qualified=True)
    inputs = properties["specs.model.yaml::host-onnxruntime-none-accuracy"]["edge.inputs"]
    assert inputs == f"b.npz ({used} of 100 samples)"  # whole batches only
