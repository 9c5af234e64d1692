"""TensorRT items end to end on the localhost SSH board (tests/sshd_server.py, tests/board_env.py), registered in the
boards file as a jetson-nano whose `trtexec:` is a STAND-IN (tests/trtexec_standin.py): a script that checks the
command lines it gets against the flags of the TensorRT version it plays, "builds" by copying the ONNX model into
the engine path, writes trtexec's JSON exports with numbers it makes up, and computes `--exportOutput` by running
the ONNX model with ONNX Runtime. It is never TensorRT, and nothing here is a TensorRT result: the tests check
edgecheck's command lines, file traffic, readers and verdicts, not TensorRT.

A real pytest session (a subprocess, with this checkout's entry points) runs a spec with a jetson-nano target, a
tensorrt-fp16 entry and latency, parity and power budgets over SSH."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from conftest import make_classifier, make_eval_data

REPO = Path(__file__).resolve().parents[1]
STANDIN = Path(__file__).with_name("trtexec_standin.py")
DEVICE = "jetson-nano"
SPEC = """\
edgecheck: 1
name: nano
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz, labels: labels, metric: top1}
  parity_samples: 4
compress:
  - tensorrt-fp16: {shapes: {x: {min: [1, 4], opt: [1, 4], max: [64, 4]}}}
targets:
  jetson-nano:
    backends: [tensorrt]
    budgets:
      parity: {cosine: 0.999, rel_l2: 0.001}
      latency_ms: {p50: %(p50)s, samples: 30, rounds: 1, warmup_runs: 1, warmup_s: 0}
      power: {power_w: %(power_w)s, energy_mj: 1000}
"""
METER = """#!/bin/sh
# STAND-IN power meter for edgecheck's tests (made-up watts): 6 W while the stand-in trtexec "runs", else 2 W
if [ -f %(busy)s ]; then echo 6.0; else echo "2000 mW"; fi
"""


def this_checkouts_entry_points(site: Path) -> None:
    """A dist-info on PYTHONPATH with the entry points of this checkout's pyproject that the installed metadata lacks
    (the TensorRT backend, format and recipes, the power check), as an installed checkout would have them."""
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    lines = []
    for group, entries in groups.items():
        if not group.startswith("edgecheck."):
            continue
        have = {e.name for e in entry_points(group=group)}
        missing = {name: target for name, target in entries.items() if name not in have}
        if missing:
            lines.append(f"[{group}]")
            lines.extend(f"{name} = {target}" for name, target in missing.items())
    dist = site / "edgecheck_checkout_entry_points-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: edgecheck-checkout-entry-points\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def project(pytester, sshd, python: Path, *, version: str = "8.5.2", p50: float = 100, power_w: float = 10,
            meter: bool = False) -> Path:
    root = pytester.path
    (root / "models").mkdir(exist_ok=True)
    make_eval_data(root / "models" / "eval.npz", make_classifier(root / "models" / "clf.onnx"), samples=16)
    (root / "specs").mkdir(exist_ok=True)
    (root / "specs" / "nano.yaml").write_text(SPEC % {"p50": p50, "power_w": power_w})
    tools = root / "tools"
    tools.mkdir(exist_ok=True)
    trtexec = tools / "trtexec"
    trtexec.write_text(f"#!{python}\n" + STANDIN.read_text())
    trtexec.chmod(0o755)
    (tools / "trtexec_standin.json").write_text(json.dumps({"version": version}))
    entry = (f"  - {{name: nano-a, device: {DEVICE}, ssh: board-a, ssh_config: {sshd.ssh_config}, python: {python}, "
             f"store: {root / 'store'}, trtexec: {trtexec}")
    if meter:
        (tools / "meter.sh").write_text(METER % {"busy": tools / "busy"})
        entry += f", power_command: sh {tools / 'meter.sh'}, power_idle_s: 0.5"
    (root / "boards.yaml").write_text("boards:\n" + entry + "}\n")
    pytester.makeini("[pytest]\nedge_boards = boards.yaml\n")
    return root


def calls(root: Path) -> list[list[str]]:
    path = root / "tools" / "trtexec_standin.calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def records(path: Path) -> dict[str, dict]:
    return {r["check"]: r for r in json.loads(path.read_text())["records"] if r.get("recipe") == "tensorrt-fp16"}


def facts(record: dict) -> dict:
    return (record.get("result") or {}).get("facts") or {}


def figures(record: dict) -> dict[str, float]:
    return {m["name"]: m["value"] for m in (record.get("result") or {}).get("measurements", [])}


@pytest.fixture
def run(pytester, monkeypatch, tmp_path):
    site = tmp_path / "site"
    this_checkouts_entry_points(site)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), str(REPO), os.environ.get("PYTHONPATH")])))

    def session(*args: str):
        return pytester.runpytest_subprocess("specs", "--edge-target", DEVICE, "-rs", "-p", "no:cacheprovider",
                                             "--edge-results", "r.json", *args)
    return session


def test_a_tensorrt_fp16_entry_runs_on_the_board_with_the_stand_in(pytester, sshd, board_python, run):
    root = project(pytester, sshd, board_python)
    result = run()
    out = result.stdout.str()
    found = records(root / "r.json")
    assert found["parity"]["result"]["verdict"] == "pass", out[-4000:]
    assert found["latency"]["result"]["verdict"] == "pass", out[-4000:]
    # no rails on this machine and no power_command: cannot judge, with the reason
    assert "no power sensor on this board" in out and "no power_command" in out, out[-4000:]
    latency = facts(found["latency"])
    assert latency["latency.source"] == "TensorRT GPU compute time (trtexec --exportTimes)"
    assert "TensorRT 8.5.2" in latency["measured_on"] and latency["measured_on"].startswith(f"{DEVICE} board nano-a (")
    values = figures(found["latency"])
    assert 1.2 <= values["latency.p50"] <= 1.26  # the stand-in's made-up computeMs, in ms
    assert values["latency.h2d_median"] == pytest.approx(0.05) and values["latency.d2h_median"] == pytest.approx(0.02)
    assert json.loads(latency["latency.placement"]) == {"GPU": 3}
    assert "head kept in fp32" in latency["latency.kept_above"]
    assert "80.0 %" in latency["latency.slowest_layers"] and "matmul + add" in latency["latency.slowest_layers"]
    memory = facts(found["memory"]) if "memory" in found else None
    assert memory is None or "engine's device memory" in memory["memory.method"]

    seen = calls(root)
    builds = [argv for argv in seen if any(a.startswith("--onnx=") for a in argv)]
    assert len(builds) == 1
    assert {"--fp16", "--buildOnly", "--profilingVerbosity=detailed"} <= set(builds[0])
    assert any(a.startswith("--exportLayerInfo=") for a in builds[0])
    assert "--minShapes=x:1x4" in builds[0] and "--maxShapes=x:64x4" in builds[0]
    timings = [argv for argv in seen if any(a.startswith("--exportTimes=") for a in argv)]
    assert len(timings) == 1 and "--iterations=30" in timings[0] and "--duration=0" in timings[0]
    assert not any(a.startswith("--exportProfile") for a in timings[0])  # no profiler in the timed run
    assert any(any(a.startswith("--exportProfile=") for a in argv) for argv in seen)
    assert any(any(a.startswith("--exportOutput=") for a in argv) for argv in seen)  # parity's outputs
    engines = list((root / "store").rglob("engine.plan"))
    assert len(engines) == 1

    # a second session finds the engine built: no new build
    before = len(builds)
    run()
    assert len([a for a in calls(root) if any(w.startswith("--onnx=") for w in a)]) == before


def test_power_from_the_boards_power_command_is_judged_with_idle_apart(pytester, sshd, board_python, run):
    root = project(pytester, sshd, board_python, meter=True, power_w=4, p50=0.5)
    result = run()
    out = result.stdout.str()
    found = records(root / "r.json")
    power = found["power"]
    assert power["result"]["verdict"] == "fail", out[-4000:]
    values = figures(power)
    # the meter's 6 W while the stand-in "ran" (a 2 W reading may fall in the moments around its exit), 2 W idle
    assert 5.0 < values["power.average"] <= 6.0 and values["power.idle"] == pytest.approx(2.0)
    assert values["power.window"] == pytest.approx(0.5)  # the stand-in's Total Host Walltime
    assert values["power.energy_per_inference"] == pytest.approx(values["power.average"] * 0.5 / 30 * 1000, rel=1e-6)
    assert values["power.energy_above_idle"] == pytest.approx((values["power.average"] - 2.0) * 0.5 / 30 * 1000)
    result.stdout.fnmatch_lines(["*power.average*W*≤ 4 W*over by*BREACH*", "*also measured: power.idle = 2 W*"])
    assert facts(power)["power.source"].startswith("power_command 'sh ")
    # the latency breach lists the slowest layers (made up by the stand-in)
    assert found["latency"]["result"]["verdict"] == "fail"
    assert "slowest layers (the runtime's per-layer profile):" in out and "matmul + add  [GPU, FP16]" in out


def test_a_flag_the_boards_tensorrt_lacks_is_a_named_build_failure(pytester, sshd, board_python, run):
    """The stand-in plays TensorRT 10.3 (JetPack 6), where --buildOnly is an unknown option: edgecheck must use
    --skipInference there; the build goes through and no call is refused."""
    root = project(pytester, sshd, board_python, version="10.3.0")
    run()
    builds = [argv for argv in calls(root) if any(a.startswith("--onnx=") for a in argv)]
    assert builds and "--skipInference" in builds[0] and "--buildOnly" not in builds[0]
    assert "--fp16" in builds[0]
