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
      memory_mb: {peak: 64}
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


def standin_board(root: Path, sshd, python: Path, device: str, settings: dict, *, name: str = "b1",
                  options: str = "") -> Path:
    """root/boards.yaml with one board of `device` (the localhost SSH board) whose trtexec is the STAND-IN, set up by
    `settings` (trtexec_standin.json: version, fail_build, dla); `options` adds boards-file fields. Its tools folder."""
    tools = root / "tools"
    tools.mkdir(exist_ok=True)
    trtexec = tools / "trtexec"
    trtexec.write_text(f"#!{python}\n" + STANDIN.read_text())
    trtexec.chmod(0o755)
    (tools / "trtexec_standin.json").write_text(json.dumps(settings))
    (root / "boards.yaml").write_text(
        "boards:\n"
        f"  - {{name: {name}, device: {device}, ssh: board-a, ssh_config: {sshd.ssh_config}, python: {python}, "
        f"store: {root / 'store'}, trtexec: {trtexec}{options}}}\n")
    return tools


def project(pytester, sshd, python: Path, *, version: str = "8.5.2", p50: float = 100, power_w: float = 10,
            meter: bool = False) -> Path:
    root = pytester.path
    (root / "models").mkdir(exist_ok=True)
    make_eval_data(root / "models" / "eval.npz", make_classifier(root / "models" / "clf.onnx"), samples=16)
    (root / "specs").mkdir(exist_ok=True)
    (root / "specs" / "nano.yaml").write_text(SPEC % {"p50": p50, "power_w": power_w})
    tools = root / "tools"
    options = f", power_command: sh {tools / 'meter.sh'}, power_idle_s: 0.5" if meter else ""
    standin_board(root, sshd, python, DEVICE, {"version": version}, name="nano-a", options=options)
    if meter:
        (tools / "meter.sh").write_text(METER % {"busy": tools / "busy"})
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
def session(pytester, monkeypatch, tmp_path):
    """`session(device, *args)`: `pytest specs --edge-target device` in a subprocess, with this checkout's entry
    points, writing r.json (the TensorRT board tests' one way of running a session)."""
    site = tmp_path / "site"
    this_checkouts_entry_points(site)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), str(REPO), os.environ.get("PYTHONPATH")])))

    def run(device: str, *args: str):
        return pytester.runpytest_subprocess("specs", "--edge-target", device, "-rs", "-p", "no:cacheprovider",
                                             "--edge-results", "r.json", *args)
    return run


@pytest.fixture
def run(session):
    """A session on the jetson-nano target."""
    return lambda *args: session(DEVICE, *args)


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
    # memory: the engine's device memory, its weights (the engine file) counted beside the build log's totals
    # (the stand-in's 1 MiB persistent + 0.5 MiB activation), never the worker's own RSS
    assert "its size (the weights" in facts(found["memory"])["memory.method"], out[-4000:]
    engine_mib = next((root / "store").rglob("engine.plan")).stat().st_size / 2**20
    assert figures(found["memory"])["memory.peak"] == pytest.approx(engine_mib + 1.5, abs=0.01)

    seen = calls(root)
    builds = [argv for argv in seen if any(a.startswith("--onnx=") for a in argv)]
    assert len(builds) == 1
    assert {"--fp16", "--buildOnly", "--profilingVerbosity=detailed"} <= set(builds[0])
    assert any(a.startswith("--exportLayerInfo=") for a in builds[0])
    assert "--minShapes=x:1x4" in builds[0] and "--maxShapes=x:64x4" in builds[0]
    # the latency check's timing (the memory check times apart, with its own shorter plan)
    timings = [argv for argv in seen if any(a.startswith("--exportTimes=") for a in argv) and "--iterations=30" in argv]
    assert len(timings) == 1 and "--duration=0" in timings[0]
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


# --- timing.time_engine's own paths, with small shell stand-ins (no board needed) ------------------------------

def _fake_engine(tmp_path: Path) -> Path:
    folder = tmp_path / "engine"
    folder.mkdir()
    (folder / "engine.plan").write_bytes(b"stand-in engine")
    return folder / "engine.plan"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "trtexec.sh"
    path.write_text("#!/bin/sh\n# a stand-in trtexec (not TensorRT)\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def _time(trtexec: str, engine: Path, tmp_path: Path, **kwargs):
    from edgecheck.vendors.tensorrt.timing import time_engine
    from edgecheck.vendors.tensorrt.trtexec import BuildSettings, TrtVersion

    options = {"samples": 10, "max_seconds": None, "timeout_s": 30.0, **kwargs}
    return time_engine(trtexec, TrtVersion(8, 5, 2), BuildSettings("fp16"), engine, None, 1, 0.0, options["samples"],
                       options["max_seconds"], tmp_path / "scratch", options["timeout_s"])


def test_the_plan_maps_to_trtexecs_minimums_and_whichever_first_holds():
    from edgecheck.vendors.tensorrt.exports import InferenceTime
    from edgecheck.vendors.tensorrt.timing import kept_samples, plan_args

    assert (plan_args(0.0, 64, 30.0).iterations, plan_args(0.0, 64, 30.0).duration_s) == (64, 0)
    assert plan_args(0.0, 64, None).warmup_ms == 200 and plan_args(1.5, 64, None).warmup_ms == 1500
    only_time = plan_args(0.0, None, 2.5)
    assert (only_time.iterations, only_time.duration_s) == (1, 2.5)
    times = [InferenceTime(0.1, 0.0, 400.0, 0.0, 400.0, None) for _ in range(10)]  # 0.4 s each
    assert len(kept_samples(times, 8, None)) == 8
    assert len(kept_samples(times, 8, 1.0)) == 3  # the third crosses 1 s of summed latency: stop there
    assert len(kept_samples(times, 8, 0.01)) == 1  # one at least


def test_a_failed_timing_names_trtexecs_errors_and_its_log(tmp_path):
    from edgecheck.vendors.tensorrt.timing import TrtexecRunError

    engine = _fake_engine(tmp_path)
    trtexec = _script(tmp_path, 'echo "[E] Error[1]: [runtime.cpp::deserializeCudaEngine] engine plan mismatch"; exit 1')
    with pytest.raises(TrtexecRunError, match=r"exit status 1\): \[E\] Error\[1\].*plan mismatch; its whole log: .*timing.log"):
        _time(trtexec, engine, tmp_path)


def test_a_truncated_times_export_is_refused_naming_the_file(tmp_path):
    from edgecheck.vendors.tensorrt.exports import TrtexecOutputError

    engine = _fake_engine(tmp_path)
    trtexec = _script(tmp_path, 'for a in "$@"; do case "$a" in --exportTimes=*) printf \'[\\n  { "startEnqMs" : 1\' '
                      '> "${a#--exportTimes=}";; esac; done; echo "&&&& PASSED TensorRT.trtexec [TensorRT v8502]"')
    with pytest.raises(TrtexecOutputError, match="times.json"):
        _time(trtexec, engine, tmp_path)


def test_no_times_export_is_a_named_failure(tmp_path):
    from edgecheck.vendors.tensorrt.timing import TrtexecRunError

    trtexec = _script(tmp_path, 'echo "&&&& PASSED TensorRT.trtexec [TensorRT v8502]"')
    with pytest.raises(TrtexecRunError, match=r"wrote no times.json \(--exportTimes\)"):
        _time(trtexec, _fake_engine(tmp_path), tmp_path)


def test_a_hung_trtexec_is_killed_with_its_process_group(tmp_path):
    from edgecheck.vendors.tensorrt.timing import TrtexecRunError

    pid_file = tmp_path / "child.pid"
    trtexec = _script(tmp_path, f"sleep 300 & echo $! > {pid_file}; wait")
    with pytest.raises(TrtexecRunError, match="did not finish timing within 1 s"):
        _time(trtexec, _fake_engine(tmp_path), tmp_path, timeout_s=1.0)
    child = int(pid_file.read_text())
    import time as clock

    for _ in range(100):  # the group was SIGKILLed: the grandchild goes too (reaped by init)
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        status = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}/stat").exists() else "X"
        if status in ("Z", "X"):
            break
        clock.sleep(0.05)
    else:
        raise AssertionError(f"the stand-in's child {child} outlived the timeout")


# --- review fixes (issue 20): warm-ups never among the samples, energy over every inference in the window -------

def _old_writer(tmp_path: Path, warmups: int, timed: int, log_lines: str) -> str:
    """A stand-in trtexec (not TensorRT; made-up times) writing --exportTimes as the 8.2-era writer does: the warm-up
    queries first (compute 50 ms each), then the timed ones (compute 1, 2, ... ms), every record with endToEndMs."""
    records = [50.0] * warmups + [float(i + 1) for i in range(timed)]
    body = ", ".join('{ "startEnqMs" : 0, "endEnqMs" : 0.1, "startH2dMs" : 0, "endH2dMs" : 0, "startComputeMs" : 0, '
                     '"endComputeMs" : 0, "startD2hMs" : 0, "endD2hMs" : 0, "h2dMs" : 0, "computeMs" : %g, "d2hMs" : 0, '
                     '"latencyMs" : %g, "endToEndMs" : %g }' % (ms, ms, ms) for ms in records)
    (tmp_path / "times.txt").write_text("[\n  " + body + "\n]\n")
    (tmp_path / "log.txt").write_text(log_lines + "&&&& PASSED TensorRT.trtexec [TensorRT v8201]\n")
    return _script(tmp_path, f'for a in "$@"; do case "$a" in --exportTimes=*) cp {tmp_path}/times.txt '
                             f'"${{a#--exportTimes=}}";; esac; done; cat {tmp_path}/log.txt')


@pytest.mark.parametrize("log_lines", [
    "[I] Warmup completed 2 queries over 200 ms\n[I] Timing trace has 5 queries over 0.5 s\n",
    "[I] Warmup completed 2 queries over 200 ms\n",  # no "Timing trace" line: the warm-up count alone
])
def test_the_82_writers_warmup_records_are_not_samples(tmp_path, log_lines):
    timed = _time(_old_writer(tmp_path, 2, 5, log_lines), _fake_engine(tmp_path), tmp_path)
    assert timed["samples_ns"] == [1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]
    assert timed["window_inferences"] == 5


def test_energy_divides_by_every_inference_in_the_window_not_the_samples_kept(tmp_path):
    from edgecheck.worker.native import measure_native

    log = "[I] Timing trace has 8 queries over 0.5 s\n=== Performance summary ===\n[I] Total Host Walltime: 0.5 s\n"
    trtexec = _old_writer(tmp_path, 0, 8, log)
    engine = _fake_engine(tmp_path)

    class Runner:  # times with time_engine, as the TensorRT runners do
        def native_timing(self, **kwargs):
            from edgecheck.vendors.tensorrt.timing import time_engine
            from edgecheck.vendors.tensorrt.trtexec import BuildSettings, TrtVersion

            return time_engine(trtexec, TrtVersion(8, 2, 1), BuildSettings("fp16"), engine, **kwargs)

    class Power:
        def finish(self, window, inferences):
            self.inferences = inferences
            return {"inferences": inferences}

    power = Power()
    command = {"samples": 3, "samples_out": str(tmp_path / "samples.npy"), "warmup": {"runs": 1, "seconds": 0}}
    answer = measure_native(command, "tensorrt", Runner(), {}, 0.1, 0, power)
    assert answer["count"] == 3  # three samples asked, kept
    assert power.inferences == 8  # trtexec ran eight in the window the power was averaged over


def test_the_engines_memory_counts_its_weights_beside_the_build_logs_totals(tmp_path):
    # the build log's totals leave out the weights (RESEARCH20 2.1: 59 + 21 MiB of totals, a 186 MiB engine):
    # a footprint without them would pass a memory budget the loaded engine breaks
    engine = _fake_engine(tmp_path)
    engine.write_bytes(b"\0" * (3 * 1048576))  # stand-in engine: 3 MiB of made-up weights
    (engine.parent / "build.log").write_text("[I] [TRT] Total Device Persistent Memory: 1048576\n"
                                             "[I] [TRT] Total Activation Memory: 2097152\n")
    trtexec = _old_writer(tmp_path, 0, 4, "[I] Timing trace has 4 queries over 0.1 s\n")
    timed = _time(trtexec, engine, tmp_path)
    assert timed["extra"]["engine_file_mb"] == 3.0
    assert timed["extra"]["engine_device_memory_mb"] == 6.0
    assert timed["memory_kb"]["peak"] == 6 * 1024 and "its size (the weights" in timed["peak_method"]


def test_an_export_too_large_to_hold_is_refused_naming_the_file_and_the_way_out(tmp_path, monkeypatch):
    from edgecheck.vendors.tensorrt import timing
    from edgecheck.vendors.tensorrt.exports import TrtexecOutputError

    monkeypatch.setattr(timing, "MAX_TIMES_BYTES", 2048)  # stands for 64 MiB: the stand-in writes ~30 records
    trtexec = _old_writer(tmp_path, 0, 30, "[I] Timing trace has 30 queries over 0.1 s\n")
    with pytest.raises(TrtexecOutputError, match=r"times\.json: .* MiB of per-inference records.*samples: 2000"):
        _time(trtexec, _fake_engine(tmp_path), tmp_path)
