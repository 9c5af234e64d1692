"""A plan never quietly checks less than the spec asks (issue 14, new-user trial): an override that
drops every check of an entry is a spec error at its line, not an entry silently never built; real
values for a quantized .tflite input are accepted, as the runner quantizes them; and the messages a new
user meets name the fix. Real pytest sessions (pytester) on specs and small models written here."""

from __future__ import annotations

import pytest

OVERRIDES = {
    "nobound": "int8-dynamic: {parity: {rel_l2: null}}",
    "null": "int8-dynamic: {parity: null}",
    "latency": "int8-dynamic: {latency_ms: {p50: null}}",
    "model": "none: {parity: null}",
}

SPEC = """
edgecheck: 1
model: {{path: ../models/clf.onnx}}
compress: [int8-dynamic]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      parity: {{rel_l2: 0.1}}
      latency_ms: {{p50: 1000}}
    recipes:
      {override}
"""


@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_an_override_that_drops_every_check_is_a_spec_error_at_its_line(spec_project, pytester, case):
    override = OVERRIDES[case]
    budgets = "parity: {rel_l2: 0.1}" if case != "latency" else "latency_ms: {p50: 1000}"
    text = SPEC.format(override=override).replace("      parity: {rel_l2: 0.1}\n      latency_ms: {p50: 1000}",
                                                  f"      {budgets}")
    spec_project(text)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-target=host", "--edge-strict")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out[-3000:]
    who = "the model itself ('none')" if case == "model" else "compress[0] int8-dynamic"
    assert f"model.yaml:10: targets.host.recipes.{override.split(':')[0]}: {who}: its overrides leave no budget " \
           "for target host: it would check nothing" in out, out[-3000:]
    assert "1 failed" in out and "passed" not in out


def test_dropping_one_check_of_several_stays_allowed(spec_project, pytester):
    spec_project(SPEC.format(override="int8-dynamic: {latency_ms: null}").replace("p50: 1000", "p50: 100000"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-target=host", "--collect-only", "-q")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out[-3000:]
    assert "host-onnxruntime-int8-dynamic-parity" in out
    assert "host-onnxruntime-int8-dynamic-latency" not in out
    assert "host-onnxruntime-none-latency" in out


TFLITE_SPEC = """
edgecheck: 1
model: {path: ../models/q.tflite}
data:
  evaluation: {path: ../models/eval.npz, labels: labels}
targets:
  host:
    backends: [tflite]
    budgets:
      accuracy_min: 99
      parity: {rel_l2: 0.001}
"""


@pytest.mark.parametrize("kind", ["float32", "float64", "int8"])
def test_a_quantized_tflite_input_takes_real_values_and_its_own_integers(pytester, kind):
    pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
    import numpy as np
    from tflite_builders import INT8_SCALE, INT8_ZERO_POINT, build_fc_tflite

    (pytester.path / "models").mkdir()
    (pytester.path / "specs").mkdir()
    weight, bias = build_fc_tflite(pytester.path / "models" / "q.tflite", int8_io=True)
    x = np.random.default_rng(5).uniform(-1, 1, size=(16, weight.shape[1]))
    q = np.clip(np.round(x / INT8_SCALE) + INT8_ZERO_POINT, -128, 127)
    labels = np.argmax(((q - INT8_ZERO_POINT) * INT8_SCALE) @ weight.T + bias, axis=1)
    fed = q.astype(np.int8) if kind == "int8" else x.astype(kind)
    np.savez(pytester.path / "models" / "eval.npz", x=fed, labels=labels)
    (pytester.path / "specs" / "q.yaml").write_text(TFLITE_SPEC.lstrip())
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-target=host", "-rA")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out[-3000:]
    assert "is float" not in out and "the model takes int8" not in out
    assert "→ 100 % (" in out, out[-3000:]  # labels made from the quantized values: all match


def _two_inputs(path, gain_shape: list[int]) -> None:
    """x[4, 3] + g (broadcast): a fixed batch of 4 beside a small second input."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "g"], ["y"])], "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3]),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, gain_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


TWO_SPEC = """
edgecheck: 1
model: {path: ../models/two.onnx}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      parity: {rel_l2: 0.1}
"""


@pytest.mark.parametrize(("gain_shape", "fix"), [([1], "set inputs: {g: {fixed: <its value>}} in the spec"),
                                                 ([3, 4], "set inputs: {g: {batch_axis: 1}} or inputs: {x: {batch_axis: 1}} in the spec")])
def test_inputs_disagreeing_on_the_batch_get_the_fix_read_off_their_shapes(spec_project, pytester, gain_shape, fix):
    _two_inputs(pytester.path / "models" / "two.onnx", gain_shape)
    spec_project(TWO_SPEC)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out[-3000:]
    assert f"the model's inputs disagree on the batch size ('x' 4 on axis 0, 'g' {gain_shape[0]} on axis 0): {fix}" \
        in out, out[-3000:]


def test_a_fixed_data_input_missing_from_the_file_suggests_giving_its_value(spec_project, pytester):
    import numpy as np
    from test_data_layout import _recurrent_data, make_recurrent

    make_recurrent(pytester.path / "models" / "vad.onnx")
    np.savez(pytester.path / "models" / "par.npz", **_recurrent_data(4))
    spec_project("""
        edgecheck: 1
        model: {path: ../models/vad.onnx}
        inputs:
          state: {batch_axis: 1}
          sr: {fixed: data}
        data: {parity: ../models/par.npz}
        targets:
          host:
            backends: [onnxruntime]
            budgets:
              parity: {rel_l2: 0.1}
        """)
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out[-3000:]
    assert "no array for model input 'sr' (the spec says inputs.sr.fixed: data: add the array to the file, or give " \
           "the value itself, a number: inputs: {sr: {fixed: <a number>}})" in out, out[-3000:]
    assert "or give inputs.sr.fixed in the spec" not in out


def test_ops_on_a_tflite_file_for_a_device_that_cannot_run_it_says_so(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ai_edge_litert", reason="the TFLite builders need ai-edge-litert")
    from pathlib import Path

    from tflite_builders import build_fc_tflite

    from edgecheck.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the shipped device profiles
    build_fc_tflite(tmp_path / "fc.tflite")
    assert main(["ops", str(tmp_path / "fc.tflite"), "--target", "rk3588"]) == 2
    captured = capsys.readouterr()
    assert "rk3588 / onnxruntime: onnxruntime cannot run a .tflite model at all (it runs .onnx files)" in captured.out
    assert "rk3588 / rknn: rknn cannot run a .tflite model at all (it runs .rknn files; its operator table judges " \
           ".onnx)" in captured.out
    assert "add one with" not in captured.out
    assert "no backend of rk3588 (rknn, onnxruntime) runs a .tflite model; devices whose backends do: " in captured.err
    assert "host" in captured.err.rsplit("do: ", 1)[1]


@pytest.mark.parametrize("command", ["inspect", "ops", "fit"])
@pytest.mark.parametrize("name", ["clf.yaml", "clf.spec"])
def test_a_spec_given_where_a_model_is_wanted_is_named_a_spec(tmp_path, capsys, command, name):
    from edgecheck.cli import main

    spec = tmp_path / name
    spec.write_text(SPEC.format(override=""))
    extra = ["--target", "host"] if command == "ops" else []
    assert main([command, str(spec), *extra]) == 2
    err = capsys.readouterr().err
    assert f"edgecheck: {spec} is a spec (YAML) file, not a model: `edgecheck {command}` takes an .onnx or .tflite " \
           f"file (the one its model: path names); a spec runs with `edgecheck check {spec}`" in err
    assert "not a valid ONNX model" not in err


SELF_PARITY = """
edgecheck: 1
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1}}
targets:
  host:
{backends}    budgets:
      parity: {{rel_l2: 0.1}}
{more}"""


@pytest.mark.parametrize("backends, args", [
    ("    backends: [onnxruntime]\n", ()),
    ("", ("--edge-backend=onnxruntime",)),  # the command line leaves only the reference backend
    ("", ()),  # the host's profile names tflite too, which does not run an .onnx model
])
def test_a_host_target_whose_only_check_is_the_originals_parity_is_a_spec_error(spec_project, pytester, backends,
                                                                                 args):
    """The original's parity on its own reference backend is not planned (the reference against itself), so a
    host target that asks for nothing else would check nothing: a spec error at the parity budget, never a
    session that passes with nothing run, and never the misleading "none of the backends runs .onnx"."""
    spec_project(SELF_PARITY.format(backends=backends, more=""), name="only")
    spec_project(SELF_PARITY.format(backends=backends, more="      accuracy_min: 50\n"), name="other")
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-target=host", *args)
    out = result.stdout.str()
    result.assert_outcomes(failed=1, passed=1)  # other.yaml: the original's accuracy
    assert f"only.yaml:{9 if backends else 8}:" in out  # the parity budget's line
    assert "compares the reference with itself" in out and "would check nothing" in out
    assert "add a compress entry" in out
    assert "none of the backends" not in out


def test_beside_other_checks_the_originals_parity_on_the_host_is_a_warning_at_its_line(spec_project, pytester):
    spec_project(SELF_PARITY.format(backends="    backends: [onnxruntime]\n", more="      accuracy_min: 50\n"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-target=host", "-W",
                                "error::edgecheck.errors.EntryNotRunWarning")
    out = result.stdout.str()
    assert result.ret != 0  # the warning, made an error, fails the spec's collection: it was raised
    assert "model.yaml" in out and "compares the reference with itself" in out
