"""What a new user's trial of the TensorRT support found (issue 20's follow-up), each pinned by a test.

The board runs use the localhost SSH board (tests/sshd_server.py) with the STAND-IN trtexec (tests/trtexec_standin.py):
it is never TensorRT and nothing here is a TensorRT result; the tests check edgecheck's verdicts, texts and calls.
The stand-in lists every layer under [GpuLayer] and keeps its layers in FP16/FP32: asked for a DLA core, its
"engine" has no DLA layer, which is the case under test."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_classifier, make_eval_data
from test_tensorrt_board import STANDIN, calls, facts, session, standin_board  # noqa: F401  (session: a fixture)

REPO = Path(__file__).resolve().parents[1]
SHAPES = "shapes: {x: {min: [1, 4], opt: [1, 4], max: [64, 4]}}"


def lab(root: Path, sshd, python: Path, device: str, spec: str, *, fail_build: bool = False,
        power_command: str | None = None) -> Path:
    """A project with one board of `device` whose trtexec is the stand-in (version 8.5.2)."""
    (root / "models").mkdir(exist_ok=True)
    make_eval_data(root / "models" / "eval.npz", make_classifier(root / "models" / "clf.onnx"), samples=16)
    (root / "specs").mkdir(exist_ok=True)
    (root / "specs" / "t.yaml").write_text(spec)
    options = f", power_command: {json.dumps(power_command)}, power_idle_s: 0.2" if power_command else ""
    standin_board(root, sshd, python, device, {"version": "8.5.2", "fail_build": fail_build}, options=options)
    (root / "pytest.ini").write_text("[pytest]\nedge_boards = boards.yaml\n")
    return root


def by_check(path: Path, recipe: str) -> dict[str, dict]:
    return {r["check"]: r for r in json.loads(path.read_text())["records"] if r.get("recipe") == recipe}


# --- 1. placement and precision on the latency result; a wrong engine is never a clean pass -----------------------

def _placed(name, device, precision, kind="CaskConvolution"):
    from edgecheck.vendors.tensorrt.layers import LayerPlacement

    return LayerPlacement(name, device, precision, kind)


def test_a_dla_build_with_every_layer_on_the_gpu_is_not_the_engine_asked_for():
    from edgecheck.vendors.tensorrt.layers import FALLBACK, GPU, engine_summary

    placed = [_placed("Reformatting CopyNode for Input Tensor 0 to conv", GPU, "FP32", "Reformat"),
              _placed("conv", FALLBACK, "FP16"), _placed("head", FALLBACK, "FP32", "CaskGemm")]
    note, mismatch = engine_summary(placed, "fp16", 0)
    assert "DLA core 0 asked" in note and f"{FALLBACK} 2 (2 computing)" in note and "GPU 1 (0 computing)" in note
    assert "1 of 2 compute layers kept above the build's FP16: head (FP32)" in note
    assert mismatch.startswith("DLA core 0 was asked for and all 2 compute layers fell back to the GPU")


def test_an_int8_build_with_no_int8_compute_layer_is_not_the_engine_asked_for():
    from edgecheck.vendors.tensorrt.layers import DLA, GPU, engine_summary

    note, mismatch = engine_summary([_placed("conv", GPU, "FP16"), _placed("fc", GPU, "FP32")], "int8", None)
    assert "2 of 2 compute layers kept above the build's INT8: conv (FP16), fc (FP32)" in note
    assert "an INT8 build with no INT8 compute layer (all 2 run in FP16/FP32)" in mismatch
    # one INT8 layer, or a DLA layer where DLA was asked: the engine asked for, its leftovers noted only
    assert engine_summary([_placed("conv", GPU, "INT8"), _placed("fc", GPU, "FP32")], "int8", None)[1] == ""
    assert engine_summary([_placed("{ForeignNode[a...b]}", DLA, "FP16", "DLA")], "fp16", 1)[1] == ""
    assert engine_summary([_placed("conv", GPU, None)], "int8", None)[1] == ""  # precision unknown: not judged


def test_the_latency_verdict_of_a_wrong_engine_is_inconclusive_with_the_reason():
    from edgecheck.checks.performance import judge_latency, native_figures
    from edgecheck.measure.stats import LatencyStats
    from edgecheck.spec.performance import LatencyBudget

    stats = LatencyStats.from_ns([1_000_000 + i for i in range(200)])
    for p50 in (50, 0.5):  # a pass and a breach alike: the figure is of another engine
        result = judge_latency(stats, LatencyBudget(p50=p50))
        native_figures(result, {"engine_note": "engine layers per device: GPU 3 (3 computing)",
                                "engine_mismatch": "an INT8 build with no INT8 compute layer"})
        assert result.verdict == "inconclusive"
        assert "engine layers per device: GPU 3 (3 computing)" in result.notes
        assert any("cannot judge: an INT8 build with no INT8 compute layer" in line for line in result.breaches())


def test_a_dla_entry_on_the_board_says_where_its_layers_ran_and_is_not_passed(pytester, sshd, board_python, session):
    spec = f"""\
edgecheck: 1
name: t
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1}}
  parity_samples: 4
compress:
  - {{name: trt-dla, steps: [tensorrt-fp16: {{dla_core: 0, {SHAPES}}}]}}
targets:
  jetson-xavier-nx:
    backends: [tensorrt]
    budgets:
      parity: {{cosine: 0.999}}
      latency_ms: {{p50: 100, samples: 30, rounds: 1, warmup_runs: 1, warmup_s: 0}}
      memory_mb: {{peak: 64}}
"""
    root = lab(pytester.path, sshd, board_python, "jetson-xavier-nx", spec)
    out = session("jetson-xavier-nx").stdout.str()
    found = by_check(root / "r.json", "trt-dla")
    latency = found["latency"]["result"]
    assert latency["verdict"] == "inconclusive", out[-4000:]
    assert any("DLA core 0 was asked for and all 2 compute layers fell back to the GPU" in m.get("cannot_judge", "")
               for m in latency["measurements"]), latency
    assert any(n.startswith("DLA core 0 asked; engine layers per device:") for n in latency["notes"])
    # 4. what trtexec was told, from its command, and how many it timed; no thread count; TensorRT named once
    said = facts(found["latency"])
    assert said["latency.method"].startswith("trtexec --warmUp=200 --iterations=30 --duration=0"), said
    assert "30 inferences timed, 30 of them kept as the samples" in said["latency.method"]
    assert "warm-up >=" not in said["latency.method"] and "fresh workers" not in said["latency.method"]
    assert "thread" not in said["runtime"].replace("no thread setting", ""), said["runtime"]
    outputs_runtime = facts(found["parity"])["runtime"]  # the board's outputs: no thread count either
    assert facts(found["parity"])["threads"].startswith("none") and said["threads"].startswith("none")
    assert outputs_runtime == "tensorrt on board nx-1, no thread setting" or (
        "thread" not in outputs_runtime.replace("no thread setting", "")), outputs_runtime
    label = said["measured_on"]
    assert label.count("TensorRT 8.5.2") == 1 and "TensorRT 8.5.2 (trtexec)" in label, label
    assert ", tensorrt," not in label and "tensorrt " not in label.lower().replace("tensorrt 8.5.2", ""), label
    # 5. what the memory figures are, said with them
    memory = found["memory"]["result"]
    assert any("memory.peak = the engine's device memory" in n and "CUDA context" in n for n in memory["notes"])
    # 2. trtexec --help ran once for the whole session (the version is kept on the board for fresh workers)
    assert sum(1 for argv in calls(root) if argv == ["--help"]) == 1, calls(root)
    assert json.loads(next((root / "store").rglob("trtexec-versions.json")).read_text())


# --- 2. a failed build is remembered for the session --------------------------------------------------------------

def test_a_failed_build_is_tried_once_per_session_and_again_in_the_next(pytester, sshd, board_python, session):
    spec = f"""\
edgecheck: 1
name: t
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1}}
  parity_samples: 4
compress:
  - tensorrt-fp16: {{{SHAPES}}}
  - tensorrt-fp32: {{{SHAPES}}}
targets:
  jetson-nano:
    backends: [tensorrt]
    budgets:
      parity: {{cosine: 0.999}}
      latency_ms: {{p50: 100, samples: 30, rounds: 1, warmup_runs: 1, warmup_s: 0}}
      memory_mb: {{peak: 64}}
"""
    root = lab(pytester.path, sshd, board_python, "jetson-nano", spec, fail_build=True)

    def builds() -> int:
        return sum(1 for argv in calls(root) if any(a.startswith("--onnx=") for a in argv))

    out = session("jetson-nano").stdout.str()
    assert builds() == 2, out[-4000:]  # one per artifact, not one per item (3 items each)
    assert out.count("failed earlier in this session") >= 4, out[-6000:]
    assert "the stand-in fails every build" in out and "build.log" in out
    session("jetson-nano")
    assert builds() == 4  # a new session tries again
    assert sum(1 for argv in calls(root) if argv == ["--help"]) == 1  # the board kept the version


def test_a_version_kept_on_the_board_is_read_by_a_fresh_worker_without_help(tmp_path, monkeypatch):
    from edgecheck.vendors.tensorrt import engine

    trtexec = tmp_path / "trtexec"
    log = tmp_path / "helps"
    trtexec.write_text(f"#!/bin/sh\n# a stand-in trtexec (not TensorRT)\necho x >> {log}\necho '[TensorRT v8201]'\n")
    trtexec.chmod(0o755)
    monkeypatch.setenv(engine.STORE_ENV, str(tmp_path / "store"))
    monkeypatch.setattr(engine, "_versions", {})
    assert str(engine.trtexec_version(str(trtexec))) == "8.2.1"
    monkeypatch.setattr(engine, "_versions", {})  # a fresh worker: nothing in memory
    assert str(engine.trtexec_version(str(trtexec))) == "8.2.1"
    assert log.read_text().count("x") == 1
    trtexec.write_text(trtexec.read_text().replace("v8201", "v8502") + "# another build\n")  # size changed: asked again
    monkeypatch.setattr(engine, "_versions", {})
    assert str(engine.trtexec_version(str(trtexec))) == "8.5.2"


# --- 3. `edgecheck boards` checks trtexec and power_command -----------------------------------------------------

def test_edgecheck_boards_checks_trtexec_and_the_power_command(tmp_path, sshd, board_python):
    trtexec = tmp_path / "tools" / "trtexec"
    trtexec.parent.mkdir()
    trtexec.write_text(f"#!{board_python}\n" + STANDIN.read_text())
    trtexec.chmod(0o755)
    (trtexec.parent / "trtexec_standin.json").write_text(json.dumps({"version": "8.2.1"}))
    common = f"ssh: board-a, ssh_config: {sshd.ssh_config}, python: {board_python}"
    boards = tmp_path / "boards.yaml"
    boards.write_text("boards:\n"
                      f"  - {{name: good, device: jetson-nano, {common}, store: {tmp_path / 'a'}, trtexec: {trtexec}, "
                      "power_command: 'echo 4200 mW'}\n"
                      f"  - {{name: nopath, device: jetson-nano, {common}, store: {tmp_path / 'b'}, "
                      "trtexec: /nonexistent/trtexec}\n"
                      f"  - {{name: banana, device: jetson-nano, {common}, store: {tmp_path / 'c'}, trtexec: {trtexec}, "
                      "power_command: echo banana}\n")
    done = subprocess.run([sys.executable, "-m", "edgecheck", "boards", "--boards", str(boards)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert "TensorRT 8.2.1 (trtexec)" in lines["good"] and "4.2 W (power_command)" in lines["good"]
    assert lines["good"].rstrip().endswith("ok"), lines["good"]
    assert "trtexec: no trtexec at /nonexistent/trtexec" in lines["nopath"]
    assert "power_command: power_command 'echo banana' printed 'banana', not a power in watts" in lines["banana"]
    done = subprocess.run([sys.executable, "-m", "edgecheck", "boards", "--boards", str(boards), "--json"],
                          capture_output=True, text=True, timeout=300)
    said = {b["name"]: b for b in json.loads(done.stdout)["boards"]}
    assert said["good"]["usable"] and said["good"]["facts"]["tools"]["trtexec"]["version"] == "8.2.1"
    assert said["good"]["facts"]["tools"]["power"]["watts"] == pytest.approx(4.2)
    assert not said["nopath"]["usable"] and not said["banana"]["usable"]


def test_the_tensorrt_version_is_read_from_the_banners_of_each_release():
    from edgecheck.boards.tools_probe import tensorrt_version, watts
    from edgecheck.vendors.tensorrt.trtexec import TrtVersion

    for banner in ("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --help",
                   "&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec", "[TensorRT v100300]",
                   "[I] TensorRT version: 8.6.2"):
        assert tensorrt_version(banner) == str(TrtVersion.parse(banner)), banner
    assert tensorrt_version("usage: trtexec") is None
    assert (watts("4.2"), watts("4.2 W"), watts("4200 mW"), watts("banana"), watts("")) == (4.2, 4.2, 4.2, None, None)


# --- 6. power_mode by id, the meter's board named, energy noise -------------------------------------------------

def test_power_mode_takes_nvpmodels_id_or_its_name():
    from pydantic import ValidationError

    from edgecheck.checks.power import PowerBudget, judge_power

    power = {"active_w": 5.0, "energy_mj": 1.0, "window_s": 1.0, "samples": 10, "inferences": 5}
    assert judge_power(power, PowerBudget(power_mode=0), "MAXN (nvpmodel mode 0)", None).verdict == "pass"
    failed = judge_power(power, PowerBudget(power_mode=0), "5W (nvpmodel mode 1)", None)
    assert failed.verdict == "fail" and "requires nvpmodel mode 0 (sudo nvpmodel -m 0)" in failed.problems[0]
    assert judge_power(power, PowerBudget(power_mode="maxn"), "MAXN (nvpmodel mode 0)", None).verdict == "pass"
    with pytest.raises(ValidationError, match="mode's name .* or its numeric id"):
        PowerBudget(power_mode=True)


def test_energy_above_idle_below_the_figures_resolution_is_zero():
    from edgecheck.checks.power import combine_rounds

    rounds = [{"source": "meter", "active_w": 3.3, "idle_w": 3.3, "window_s": w, "inferences": 7, "samples": 3}
              for w in (0.3, 0.7)]
    joules = sum(3.3 * w for w in (0.3, 0.7))
    assert (joules - 3.3 * sum((0.3, 0.7))) < 0  # the float noise the trial saw (negative, here)
    combined = combine_rounds(rounds)
    assert combined["dynamic_energy_mj"] == 0.0 and not math.copysign(1, combined["dynamic_energy_mj"]) < 0
    real = combine_rounds([{**rounds[0], "active_w": 4.3}])
    assert real["dynamic_energy_mj"] == pytest.approx(1.0 * 0.3 / 7 * 1000)  # 1 W above idle: kept


def test_a_bad_meter_reading_names_the_board_and_the_boards_file(pytester, sshd, board_python, session):
    spec = f"""\
edgecheck: 1
name: t
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1}}
compress:
  - tensorrt-fp16: {{{SHAPES}}}
targets:
  jetson-nano:
    backends: [tensorrt]
    budgets:
      latency_ms: {{p50: 100, samples: 30, rounds: 1, warmup_runs: 1, warmup_s: 0}}
      power: {{power_w: 10}}
"""
    root = lab(pytester.path, sshd, board_python, "jetson-nano", spec, power_command="echo banana")
    out = session("jetson-nano").stdout.str()
    assert "power_command 'echo banana'" in out and "of board b1 in the boards file" in out, out[-4000:]
    assert by_check(root / "r.json", "tensorrt-fp16")["latency"]["result"]["verdict"] == "pass"
