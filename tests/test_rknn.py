"""The rknn backend as users run it: real rknn-toolkit2 builds of small models made here, run on its
simulator in pytester sessions (`edgecheck env create rknn`; CI creates it; without it those tests skip
with that command). What needs no toolkit — a missing environment, a crashing toolkit, a .rknn made
elsewhere, chips that do not match — runs everywhere, a stand-in interpreter playing the crash."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import HANG_GUARD_S, junit_properties
from onnx import TensorProto, helper, numpy_helper

from edgecheck.envs import find_env, run_env_env, unavailable_reason

ENV = find_env("rknn")
needs_toolkit = pytest.mark.skipif(ENV is None, reason=unavailable_reason("rknn") or "")
FLOAT = TensorProto.FLOAT


def _save(path: Path, nodes, inputs, outputs, initializers, opset: int = 13) -> Path:
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _weight(name: str, shape: tuple[int, ...], seed: int = 0, scale: float = 0.3):
    return numpy_helper.from_array((np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32), name)


def conv_model(path: Path) -> Path:
    """x[N,3,8,8] → Conv 'conv' → Relu → GlobalAveragePool → Flatten → Gemm 'fc' → scores[N,5]."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["scores"], name="fc", transB=1)]
    return _save(path, nodes, [("x", FLOAT, ["N", 3, 8, 8])], [("scores", FLOAT, ["N", 5])],
                 [_weight("w", (8, 3, 3, 3)), _weight("fw", (5, 8), 1, 1.0), _weight("fb", (5,), 2)])


def nonzero_model(path: Path) -> Path:
    """x[1,3,8,8] → Conv 'stem' → NonZero 'find_peaks' on the conv's output: the toolkit refuses it."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="stem", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("NonZero", ["c"], ["peaks"], name="find_peaks")]
    return _save(path, nodes, [("x", FLOAT, [1, 3, 8, 8])], [("c", FLOAT, [1, 4, 8, 8]),
                 ("peaks", TensorProto.INT64, [4, None])], [_weight("w", (4, 3, 3, 3))])


def layernorm_model(path: Path, epsilon: bool) -> Path:
    """x[1,16,32] → MatMul → LayerNormalization (opset 17), with or without its optional epsilon."""
    extra = {"epsilon": 1e-5} if epsilon else {}
    nodes = [helper.make_node("MatMul", ["x", "m"], ["h"], name="proj"),
             helper.make_node("LayerNormalization", ["h", "s", "b"], ["y"], name="norm", axis=-1, **extra)]
    return _save(path, nodes, [("x", FLOAT, [1, 16, 32])], [("y", FLOAT, [1, 16, 32])],
                 [_weight("m", (32, 32)), numpy_helper.from_array(np.ones(32, np.float32), "s"),
                  numpy_helper.from_array(np.zeros(32, np.float32), "b")], opset=17)


def topk_model(path: Path) -> Path:
    """x[1,3,8,8] → Conv → GlobalAveragePool → Flatten → Gemm → TopK(k=3) 'best': on the CPU."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw"], ["scores"], name="fc", transB=1),
             helper.make_node("TopK", ["scores", "k"], ["values", "indices"], name="best")]
    return _save(path, nodes, [("x", FLOAT, [1, 3, 8, 8])],
                 [("values", FLOAT, [1, 3]), ("indices", TensorProto.INT64, [1, 3])],
                 [_weight("w", (8, 3, 3, 3)), _weight("fw", (10, 8), 1), numpy_helper.from_array(np.array([3], np.int64), "k")])


def two_input_model(path: Path) -> Path:
    """image[N,3,8,8] → Conv → GlobalAveragePool → Flatten, plus extra[N,4] → Concat → Gemm → scores[N,5]:
    inputs of two ranks (the simulator takes one data format for all of them)."""
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Concat", ["f", "extra"], ["joined"], name="join", axis=1),
             helper.make_node("Gemm", ["joined", "fw"], ["scores"], name="fc", transB=1)]
    return _save(path, nodes, [("image", FLOAT, ["N", 3, 8, 8]), ("extra", FLOAT, ["N", 4])],
                 [("scores", FLOAT, ["N", 5])], [_weight("w", (8, 3, 3, 3)), _weight("fw", (5, 12), 1)])


def echo_model(path: Path) -> Path:
    """x → Relu 'r' (an output) → Conv 'c' (an output, also read by) → Identity 'c2' (an output): the
    toolkit gives back fewer outputs than the model declares."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Identity", ["c"], ["c2"], name="copy")]
    return _save(path, nodes, [("x", FLOAT, [1, 3, 4, 4])], [("r", FLOAT, [1, 3, 4, 4]), ("c", FLOAT, [1, 2, 4, 4]),
                 ("c2", FLOAT, [1, 2, 4, 4])], [_weight("w", (2, 3, 1, 1))])


def _data(models: Path, shape: tuple[int, ...] = (3, 8, 8), count: int = 40) -> None:
    import onnxruntime

    x = np.random.default_rng(1).uniform(0, 1, size=(count, *shape)).astype(np.float32)
    if (models / "conv.onnx").is_file():
        scores = onnxruntime.InferenceSession(str(models / "conv.onnx")).run(["scores"], {"x": x})[0]
        np.savez(models / "eval.npz", x=x, labels=np.argmax(scores, axis=1))
    np.savez(models / "calibration.npz", x=x[:16])


SPEC = """\
edgecheck: 1
model: {{path: ../models/{model}}}
data:
  calibration: ../models/calibration.npz
{evaluation}compress: {compress}
targets:
  rk3588:
    backends: [{backends}]
    budgets:
{budgets}
"""


def _spec(project: Path, model: str, budgets: str, compress: str = "[rknn-fp16, rknn-int8]",
          backends: str = "rknn", evaluation: bool = False) -> Path:
    lines = "".join(f"      {line}\n" for line in budgets.strip().splitlines())
    text = SPEC.format(model=model, compress=compress, backends=backends, budgets=lines.rstrip("\n"),
                       evaluation="  evaluation: {path: ../models/eval.npz, labels: labels, metric: top1}\n"
                       if evaluation else "")
    (project / "specs").mkdir(exist_ok=True)
    path = project / "specs" / "model.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def models(pytester) -> Path:
    folder = pytester.path / "models"
    folder.mkdir(exist_ok=True)
    return folder


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1. without the toolkit


def test_without_the_environment_rknn_entries_skip_with_the_command_and_fail_under_strict(pytester, models,
                                                                                           monkeypatch):
    monkeypatch.setenv("EDGECHECK_ENVS", str(pytester.path / "no-envs"))
    conv_model(models / "conv.onnx")
    _data(models)
    _spec(pytester.path, "conv.onnx", "parity: {cosine: 0.99}\nsize_mb: 1", backends="rknn, onnxruntime")
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(passed=2, skipped=4)  # none on onnxruntime; the .rknn entries' checks skip
    # the recipe's own skip (it needs the environment too) comes before the backend's, with the same command
    result.stdout.fnmatch_lines([f"SKIPPED [[]2[]]*recipe '{recipe}': the rknn environment is not created: run "
                                 "`edgecheck env create rknn`*" for recipe in ("rknn-fp16", "rknn-int8")])
    strict = pytester.runpytest("specs", "--edge-strict")
    strict.assert_outcomes(passed=2, failed=4)


def _fake_toolkit(folder: Path, script: str) -> Path:
    """A stand-in 'environment' whose python runs `script` (sh): a toolkit that crashes or hangs."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + script)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return folder


def test_a_toolkit_that_segfaults_in_build_fails_its_entry_naming_model_and_step(pytester, models, monkeypatch):
    # argv: python rknn_toolkit.py BUILD_DIR: it records the step, then dies of SIGSEGV as the toolkit can
    fake = _fake_toolkit(pytester.path / "fake-rknn", 'printf build > "$2/phase"\nkill -SEGV $$\n')
    monkeypatch.setenv("EDGECHECK_ENV_RKNN", str(fake))
    conv_model(models / "conv.onnx")
    _data(models)
    _spec(pytester.path, "conv.onnx", "size_mb: 1", compress="[rknn-int8, int8-static]", backends="rknn, onnxruntime")
    result = pytester.runpytest("specs", "-rA")
    result.assert_outcomes(passed=2, failed=1)  # none and int8-static on onnxruntime go on
    result.stdout.fnmatch_lines(["*recipe 'rknn-int8': rknn-toolkit2 crashed (SIGSEGV) during build of conv.onnx*"])


def test_a_hung_toolkit_fails_within_the_worker_limit_saying_how_to_give_it_longer(pytester, models, monkeypatch):
    fake = _fake_toolkit(pytester.path / "fake-rknn", 'printf build > "$2/phase"\nexec sleep 300\n')
    monkeypatch.setenv("EDGECHECK_ENV_RKNN", str(fake))
    conv_model(models / "conv.onnx")
    _data(models)
    _spec(pytester.path, "conv.onnx", "size_mb: 1", compress="[rknn-int8]")
    # the step has 10 s: the toolkit gets what is left of it less a 2 s margin, so it is stopped about
    # 8 s in however slowly the recipe's own work went before it (milliseconds here, seconds under load),
    # and its timeout has 2 s to be reported before the worker's limit
    result = pytester.runpytest("specs", "--edge-worker-timeout=10", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)  # and it names its step
    result.stdout.fnmatch_lines(["*rknn-toolkit2 did not finish build of conv.onnx within * s (raise "
                                 "edge_worker_timeout to give it longer)*"])
    assert "'rknn-int8' timed out" not in result.stdout.str()


def test_the_simulator_never_stands_in_for_device_latency_or_memory(pytester, models, monkeypatch):
    fake = _fake_toolkit(pytester.path / "fake-rknn", "exit 1\n")
    monkeypatch.setenv("EDGECHECK_ENV_RKNN", str(fake))
    conv_model(models / "conv.onnx")
    _data(models)
    _spec(pytester.path, "conv.onnx", "latency_ms: {p95: 5, source: host}\nmemory_mb: {peak: 8, source: host}",
          compress="[rknn-int8]")
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(skipped=2)  # said before any build: the fake toolkit is never started
    result.stdout.fnmatch_lines(["SKIPPED*cannot judge rk3588 latency with rknn here: it runs on a simulator*"
                                 "use source: estimate*"])


def test_a_rknn_file_made_elsewhere_is_refused_with_the_reason(pytester, models):
    (models / "bought.rknn").write_bytes(b"RKNN\0" + bytes(100))
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "model.yaml").write_text(
        "edgecheck: 1\nmodel: {path: ../models/bought.rknn}\ntargets:\n  rk3588:\n    budgets: {size_mb: 1}\n")
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*bought.rknn*build folder*bought.rknn.build*"])


def test_each_rockchip_target_runs_the_artifacts_built_for_its_own_chip(pytester, models):
    conv_model(models / "conv.onnx")
    _data(models)
    spec = _spec(pytester.path, "conv.onnx", "size_mb: 1", compress="[rknn-int8, {name: int8-3568, steps: "
                 "[rknn-int8: {platform: rk3568}]}]")
    spec.write_text(spec.read_text() + "  rk3568:\n    backends: [rknn]\n    budgets: {size_mb: 1}\n")
    result = pytester.runpytest("specs", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*rk3588-rknn-rknn-int8-size*", "*rk3568-rknn-int8-3568-size*"])
    assert "rk3568-rknn-rknn-int8-size" not in result.stdout.str()
    assert "rk3588-rknn-int8-3568-size" not in result.stdout.str()
    # the ONNX model's graph judged on rknn (an ops budget) does not hide a chip no entry builds for
    spec.write_text(spec.read_text().replace("budgets: {size_mb: 1}", "budgets: {size_mb: 1, ops: {unsupported: 0}}"))
    # a Rockchip target whose chip no entry builds for would check nothing on rknn: said at its line
    spec.write_text(spec.read_text().replace("{platform: rk3568}", "{platform: rk3576}"))
    result = pytester.runpytest("specs")
    result.stdout.fnmatch_lines(["*targets.rk3568: rknn on rk3568 runs artifacts built for rk3568, and every rknn "
                                 "entry is built for another chip: rknn-int8 (rk3588), int8-3568 (rk3576)*"])


# 2. with the toolkit, for real


@needs_toolkit
def test_rknn_builds_run_on_the_simulator_and_a_tight_parity_budget_names_the_layers(pytester, models):
    conv_model(models / "conv.onnx")
    _data(models)
    before = _tree(models)
    _spec(pytester.path, "conv.onnx", "accuracy_drop: 20\nparity: {cosine: 0.99}\nsize_mb: 1\n"
          "ops: {unsupported: 0, fallback: 1}\nlatency_ms: {p95: 50, source: estimate}\n"
          "memory_mb: {peak: 16, source: estimate}", evaluation=True)
    result = pytester.runpytest("specs", "-rA", "--junitxml=report.xml")
    result.assert_outcomes(passed=14)  # 6 checks of each .rknn, and the ONNX model's graph on rknn (ops, estimate)
    cases = junit_properties(pytester.path / "report.xml")
    parity = cases["rk3588-rknn-rknn-int8-parity"]
    assert parity["edge.measured_on"].startswith("rknn-toolkit2 simulator on x86_64 (not an NPU")
    assert float(parity["edge.parity.scores.cosine"]) > 0.99
    assert float(cases["rk3588-rknn-rknn-fp16-parity"]["edge.parity.scores.rel_l2"]) < 0.01
    assert "calibrated on 16 samples" in parity["edge.recipe.did"]
    latency = cases["rk3588-rknn-rknn-int8-latency"]
    assert latency["edge.measured_on"].startswith("estimate, not a measurement: rknn-toolkit2 2.5.0 building for "
                                                  "rk3588's cycle estimate")
    assert float(latency["edge.latency.estimate.cycles"]) > 0
    memory = cases["rk3588-rknn-rknn-int8-memory"]
    assert memory["edge.measured_on"].startswith("estimate, not a measurement")
    assert _tree(models) == before  # the toolkit never touched the user's files
    assert not list(pytester.path.glob("check*.onnx"))  # its verbose build's files stayed in its scratch folder

    spec = pytester.path / "specs" / "model.yaml"
    spec.write_text(spec.read_text().replace("parity: {cosine: 0.99}", "parity: {cosine: 0.99, rel_l2: 0.0001}"))
    tight = pytester.runpytest("specs", "-k", "parity")
    tight.assert_outcomes(failed=2)
    tight.stdout.fnmatch_lines(["*parity budget breached*recipe rknn-int8*",
                                "*rknn per-layer error (rknn-toolkit2's accuracy_analysis of the build, simulator "
                                "against the float model, on calibration sample 0)*",
                                "*[[]*[]] *: cosine 0.9* for the layer alone*accumulated*"])


@needs_toolkit
def test_inputs_of_two_ranks_build_run_and_a_memory_estimate_over_budget_fails(pytester, models):
    two_input_model(models / "two.onnx")
    rng = np.random.default_rng(3)
    np.savez(models / "calibration.npz", image=rng.uniform(0, 1, (8, 3, 8, 8)).astype(np.float32),
             extra=rng.uniform(0, 1, (8, 4)).astype(np.float32))
    _spec(pytester.path, "two.onnx", "parity: {cosine: 0.99}\nmemory_mb: {peak: 0.00001, source: estimate}",
          compress="[rknn-int8]")
    result = pytester.runpytest("specs", "-rA")
    result.assert_outcomes(passed=1, failed=1)  # parity on the simulator; the compiler's memory is over
    result.stdout.fnmatch_lines(["*memory.estimate.peak*≥ * ?iB*≤ 10.5 B*over by * ?iB*BREACH*"])


@needs_toolkit
def test_an_output_the_toolkit_drops_fails_the_build_naming_the_outputs(pytester, models):
    echo_model(models / "echo.onnx")
    np.savez(models / "calibration.npz", x=np.random.default_rng(0).uniform(0, 1, (4, 3, 4, 4)).astype(np.float32))
    _spec(pytester.path, "echo.onnx", "parity: {cosine: 0.99}", compress="[rknn-fp16]")
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*refused echo.onnx at inference: gave 2 outputs for the model's 3 (r, c, c2)*"])


@needs_toolkit
def test_a_refused_build_fails_its_entry_in_the_toolkits_words_and_the_session_goes_on(pytester, models):
    nonzero_model(models / "peaks.onnx")
    _data(models)
    _spec(pytester.path, "peaks.onnx", "ops: {unsupported: 0}\nsize_mb: 1", compress="[rknn-fp16]",
          backends="rknn, onnxruntime")
    result = pytester.runpytest("specs", "-rA")
    # rknn: the ONNX model by Rockchip's table (fails: NonZero), the build refused (ops, size fail);
    # onnxruntime: ops and size pass
    result.assert_outcomes(failed=3, passed=2)
    result.stdout.fnmatch_lines(["*recipe 'rknn-fp16': rknn-toolkit2 2.5.0 refused peaks.onnx at build: The input 0 "
                                 "of NonZero('find_peaks') need to be constant! It will cause the graph to be a "
                                 "dynamic graph!*"])


@needs_toolkit
def test_layernorm_without_epsilon_reads_well_and_disable_rules_works_around_it(pytester, models):
    layernorm_model(models / "norm.onnx", epsilon=False)
    _data(models, shape=(16, 32), count=8)
    np.savez(models / "calibration.npz", x=np.random.default_rng(0).normal(size=(4, 1, 16, 32)).astype(np.float32)[:, 0])
    spec = _spec(pytester.path, "norm.onnx", "parity: {rel_l2: 0.01}", compress="[rknn-fp16]")
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*LayerNormalization without an explicit epsilon*disable_rules: "
                                 "[[]convert_layernorm_to_exnorm[]]*"])
    spec.write_text(spec.read_text().replace("compress: [rknn-fp16]", "compress: [{name: fp16-ln, steps: [rknn-fp16: "
                                             "{disable_rules: [convert_layernorm_to_exnorm]}]}]"))
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=1)


@needs_toolkit
def test_topk_placed_on_the_cpu_counts_as_a_fallback_named_by_its_layer(pytester, models):
    topk_model(models / "topk.onnx")
    _data(models)
    _spec(pytester.path, "topk.onnx", "ops: {fallback: 1}\nparity: {cosine: 0.99}", compress="[rknn-fp16]")
    result = pytester.runpytest("specs", "-rA", "--junitxml=report.xml")
    # the .rknn: parity passes (indices exact), ops fails (two layers on the CPU); the ONNX graph by
    # Rockchip's table: TopK is its one fallback
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*fallback: node 'TopK:*' (TopK): the compiler placed it on the CPU*"
                                 "from ONNX TopK 'best'*"])


@needs_toolkit
def test_the_runner_refuses_a_rebuild_that_differs_from_the_artifact(tmp_path):
    from edgecheck.compress import RecipeContext, get_recipe

    conv_model(tmp_path / "conv.onnx")
    _data(tmp_path)
    recipe = get_recipe("rknn-int8")
    out = tmp_path / "out"
    out.mkdir()
    artifact = recipe.apply(tmp_path / "conv.onnx", recipe.parse_params({}),
                            RecipeContext(tmp_path / "calibration.npz", out)).path
    probe = artifact.with_name(artifact.name + ".build") / "probe_outputs.npz"
    recorded = np.load(probe)
    np.savez(probe, *[recorded[name] + 1 for name in recorded.files])  # as if another toolkit had built it
    code = ("import sys; from pathlib import Path; from edgecheck.vendors.rknn.backend import RknnBackend\n"
            "try:\n    RknnBackend().load(Path(sys.argv[1]))\nexcept Exception as exc:\n    print(exc)\n")
    environ = run_env_env(ENV)
    environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    said = subprocess.run([str(ENV.python), "-c", code, str(artifact)], env=environ, capture_output=True, text=True,
                          cwd=tmp_path, timeout=HANG_GUARD_S)
    assert "does not reproduce the artifact's recorded outputs" in said.stdout, said.stdout + said.stderr
    report = json.loads((artifact.with_name(artifact.name + ".build") / "report.json").read_text())
    assert report["build"]["layers"] and report["error_analysis"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith("check")]
