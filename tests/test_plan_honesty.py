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
    assert "accuracy = 100 %" in out, out[-3000:]  # labels made from the quantized values: all match
