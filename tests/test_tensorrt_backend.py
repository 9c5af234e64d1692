"""The tensorrt backend without TensorRT: its skip with the reason here (and failure under --edge-strict) in a
real session, the board-side engine build and the trtexec runner driven by a STAND-IN trtexec script.

The stand-in is a small Python script written into tmp_path that answers `--help` with a real banner and
writes what trtexec would write (an engine file, a layer-info file, an --exportOutput JSON in trtexec's own
layout). It checks the command line and the file traffic of edgecheck's code, nothing of TensorRT: no figure
or output from it is a TensorRT result, and none is counted as one.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgecheck.backends.base import RunOptions
from edgecheck.errors import BackendError
from edgecheck.vendors.tensorrt import engine as engine_module
from edgecheck.vendors.tensorrt.backend import TensorrtBackend
from edgecheck.vendors.tensorrt.engine import EngineBuildError, ensure_engine, find_trtexec, trtexec_version
from edgecheck.vendors.tensorrt.trtexec import BuildSettings, InputShapes, TrtVersion

STAND_IN = textwrap.dedent('''\
    #!{python}
    # STAND-IN for trtexec (edgecheck's tests): not TensorRT; it writes files shaped like trtexec's.
    import json, os, sys, time
    args = sys.argv[1:]
    with open(os.environ["STAND_IN_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    banner = "&&&& RUNNING TensorRT.trtexec [TensorRT {packed}] # trtexec " + " ".join(args)
    print(banner)
    if args == ["--help"]:
        sys.exit(0)
    mode = os.environ.get("STAND_IN_MODE", "ok")
    if mode == "fail":
        print("[01/01/2025-00:00:00] [E] Error[4]: [network.cpp::validate::2789] Error Code 4: Internal Error (no DLA)")
        print("&&&& FAILED TensorRT.trtexec [TensorRT {packed}] # trtexec")
        sys.exit(1)
    if mode == "hang":
        time.sleep(60)
    if "saveEngine" in opts:
        with open(opts["saveEngine"], "wb") as f:
            f.write(b"stand-in engine, not TensorRT")
        if "exportLayerInfo" in opts:
            with open(opts["exportLayerInfo"], "w") as f:
                f.write('{{"Layers": ["y"], "Bindings": ["x", "y"]}}')
    if "exportOutput" in opts:
        spec = dict(item.split(":", 1) for item in opts["loadInputs"].split(","))
        x = [float(v) for v in __import__("array").array("f", open(spec["x"], "rb").read())]
        # trtexec's --exportOutput layout (RESEARCH20 1.5, sampleReporting.cpp)
        with open(opts["exportOutput"], "w") as f:
            f.write('[\\n  {{ "name" : "y"\\n  , "dimensions" : "1x4"\\n  , "values" : [ '
                    + ", ".join("%g" % (2 * v) for v in x) + ' ]\\n  }}\\n]\\n')
    print("&&&& PASSED TensorRT.trtexec [TensorRT {packed}] # trtexec")
''')


def stand_in(folder: Path, packed: str = "v8502") -> Path:
    path = folder / "trtexec"
    path.write_text(STAND_IN.format(python=sys.executable, packed=packed))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(autouse=True)
def _format() -> None:
    from edgecheck.formats import register_format
    from edgecheck.vendors.tensorrt.format import TensorrtJobFormat

    register_format(TensorrtJobFormat)  # the installed entry points may predate it (pyproject names it)


@pytest.fixture
def calls(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    monkeypatch.setattr(engine_module, "_versions", {})
    return log


def _argvs(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _job(tmp_path: Path) -> Path:
    from onnx import TensorProto, helper
    import onnx

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgecheck.tensorrt.build", BuildSettings("fp16").to_json()
    blobs = tmp_path / "store" / "blobs"
    blobs.mkdir(parents=True)
    path = blobs / "0123abcd.trtjob"
    onnx.save(model, path)
    return path


# -- here: no TensorRT


def test_here_the_backend_is_unavailable_with_the_reason_and_loads_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no trtexec on PATH
    backend = TensorrtBackend()
    found = backend.availability()
    assert not found and "Jetson board of the boards file" in found.reason and "no trtexec" in found.reason
    with pytest.raises(BackendError, match="run on a Jetson board"):
        backend.load(_job(tmp_path), RunOptions())


def test_tensorrt_bindings_runner_needs_the_tensorrt_module():
    pytest.importorskip("tensorrt", reason="no TensorRT Python bindings here (they come only from NVIDIA's index and "
                        "run only with a CUDA GPU): TensorrtRunner runs on a Jetson only")


SPEC = """\
edgecheck: 1
model: {path: ../models/clf.onnx}
compress:  # shapes: the model's batch is dynamic, and the recipe's refusal of that would win over the board's skip
  - tensorrt-fp16: {shapes: {x: {min: [1, 4], opt: [1, 4], max: [8, 4]}}}
targets:
  jetson-nano:
    backends: [tensorrt]
    budgets:
      size_mb: 1
"""

CONFTEST = """\
from edgecheck.backends import register_backend
from edgecheck.formats import register_format
from edgecheck.vendors.tensorrt.backend import TensorrtBackend
from edgecheck.vendors.tensorrt.format import TensorrtJobFormat
import edgecheck.vendors.tensorrt.recipes  # the installed entry points may predate these (pyproject names them)

register_backend(TensorrtBackend)
register_format(TensorrtJobFormat)
"""


def test_a_jetson_spec_skips_tensorrt_items_with_the_reason_and_fails_them_under_strict(pytester, spec_project):
    spec_project(SPEC)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*Jetson board of the boards file*"])
    strict = pytester.runpytest("specs", "--edge-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*Jetson board of the boards file*"])


# -- on a board: the engine build (stand-in trtexec)


def test_trtexec_is_found_where_configured_and_its_version_read_from_the_banner(tmp_path, calls):
    trtexec = stand_in(tmp_path, "v100300")
    assert find_trtexec(str(trtexec)) == str(trtexec)
    assert find_trtexec(str(tmp_path / "missing")) is None
    assert trtexec_version(str(trtexec)) == TrtVersion(10, 3, 0)
    trtexec_version(str(trtexec))
    assert _argvs(calls) == [["--help"]]  # read once per binary


def test_engine_is_built_once_with_its_log_and_layer_info_then_found(tmp_path, calls):
    trtexec, job = stand_in(tmp_path, "v8201"), _job(tmp_path)
    settings = BuildSettings("fp16", workspace_mb=64)
    first = ensure_engine(job, settings, str(trtexec), timeout_s=60, root=str(tmp_path))
    assert not first.cached and first.version == TrtVersion(8, 2, 1)
    assert first.engine.read_bytes().startswith(b"stand-in engine") and first.engine.parent.parent.name == job.name + ".engines"
    assert first.layer_info is not None and json.loads(first.layer_info.read_text())["Layers"] == ["y"]
    assert "&&&& PASSED" in first.build_log.read_text()
    build = _argvs(calls)[1]
    assert build[0].startswith("--onnx=") and build[0].endswith("model.onnx")  # the job under an .onnx name
    assert "--workspace=64" in build and "--fp16" in build and "--buildOnly" in build
    again = ensure_engine(job, settings, str(trtexec), timeout_s=60, root=str(tmp_path))
    assert again.cached and again.engine == first.engine and len(_argvs(calls)) == 2  # no second build
    other = ensure_engine(job, BuildSettings("fp32"), str(trtexec), timeout_s=60, root=str(tmp_path))
    assert other.engine != first.engine  # another key: settings are in it
    board = tmp_path / "proc" / "device-tree"
    board.mkdir(parents=True)
    (board / "model").write_bytes(b"NVIDIA Jetson Xavier NX Developer Kit\x00")
    moved = ensure_engine(job, settings, str(trtexec), timeout_s=60, root=str(tmp_path))
    assert moved.engine != first.engine and not moved.cached  # the GPU is in the key too


def test_a_failed_build_raises_with_the_error_lines_and_the_logs_path(tmp_path, calls, monkeypatch):
    monkeypatch.setenv("STAND_IN_MODE", "fail")
    trtexec, job = stand_in(tmp_path), _job(tmp_path)
    with pytest.raises(EngineBuildError, match=r"TensorRT 8\.5\.2\) could not build.*Error Code 4: Internal Error \(no DLA\)"
                                               r".*build\.log") as caught:
        ensure_engine(job, BuildSettings("fp16", dla_core=0), str(trtexec), timeout_s=60, root=str(tmp_path))
    log = Path(str(caught.value).rsplit("the whole log: ", 1)[1])
    assert log.is_file() and "[E]" in log.read_text()
    assert not any(p.name.startswith("engine") for p in log.parent.iterdir())  # no half-built engine kept


def test_a_build_past_its_limit_is_killed(tmp_path, calls, monkeypatch):
    monkeypatch.setenv("STAND_IN_MODE", "hang")
    trtexec, job = stand_in(tmp_path), _job(tmp_path)
    with pytest.raises(EngineBuildError, match="did not finish building the engine within 1 s"):
        ensure_engine(job, BuildSettings("fp16"), str(trtexec), timeout_s=1, root=str(tmp_path))


# -- on a board: the trtexec runner (stand-in trtexec)


def test_on_a_board_the_trtexec_runner_writes_raw_inputs_and_reads_the_exported_output(tmp_path, calls):
    pytest.importorskip("edgecheck.vendors.tensorrt.exports",
                        reason="T1's exports.read_output is not merged into this branch yet")
    trtexec, job = stand_in(tmp_path), _job(tmp_path)
    backend = TensorrtBackend()
    extra = {**backend.board_extra(job), "trtexec": str(trtexec), "tensorrt.runner": "trtexec"}
    runner = backend.load(job, RunOptions(on_board=True, extra=extra, suffixes=(".trtjob",)))
    assert type(runner).__name__ == "TrtexecRunner" and runner.input_names == ("x",) and runner.output_names == ("y",)
    x = np.array([[1.0, -2.0, 0.5, 3.0]], np.float32)
    outputs = runner.infer({"x": x})
    np.testing.assert_allclose(outputs["y"], 2 * x)  # what the stand-in wrote, read back in the output's dtype
    assert outputs["y"].dtype == np.float32
    run = _argvs(calls)[-1]
    assert run[0].startswith("--loadEngine=") and run[1].startswith("--loadInputs=x:") and "--iterations=1" in run
    assert "TrtexecRunner" in backend.board_facts()["runner"]


def test_board_load_refusals_name_what_is_missing(tmp_path, calls):
    job = _job(tmp_path)
    backend = TensorrtBackend()
    with pytest.raises(BackendError, match="no build settings"):
        backend.load(job, RunOptions(on_board=True, extra={}, suffixes=(".trtjob",)))
    with pytest.raises(BackendError, match="no trtexec at /nowhere/trtexec"):
        backend.load(job, RunOptions(on_board=True, extra={**backend.board_extra(job), "trtexec": "/nowhere/trtexec"},
                                     suffixes=(".trtjob",)))
    level = BuildSettings("fp16", builder_optimization_level=2).to_json()  # 8.6 on; the stand-in says 8.5.2
    with pytest.raises(BackendError, match=r"building the engine.*TensorRT 8\.5\.2 cannot take builder_optimization_level"):
        backend.load(job, RunOptions(on_board=True, extra={"tensorrt.build": level, "trtexec": str(stand_in(tmp_path))},
                                     suffixes=(".trtjob",)))


def test_board_availability_and_facts(tmp_path, calls, monkeypatch):
    monkeypatch.setenv("EDGECHECK_TRTEXEC", str(tmp_path / "absent"))
    assert "no trtexec at" in TensorrtBackend().board_availability().reason
    monkeypatch.setenv("EDGECHECK_TRTEXEC", str(stand_in(tmp_path, "v8601")))
    assert TensorrtBackend().board_availability()
    facts = TensorrtBackend().board_facts()
    assert facts["tensorrt"] == "8.6.1" and facts["trtexec"].endswith("trtexec")
    # this machine is no Jetson: its release and JetPack are absent facts, never invented
    assert os.path.exists("/etc/nv_tegra_release") or not {"l4t", "jetpack"} & set(facts)


def test_dynamic_shapes_reach_the_run_command(tmp_path):
    from edgecheck.vendors.tensorrt.trtexec import output_command

    settings = BuildSettings("fp16", shapes={"x": InputShapes((1, 4), (2, 4), (8, 4))})
    argv = output_command("trtexec", TrtVersion(8, 2, 1), settings, "e.plan", {"x": "x.bin"}, "o.json", {"x": (5, 4)})
    assert "--shapes=x:5x4" in argv
    assert os.path.basename(argv[0]) == "trtexec"


# -- review fixes (issue 20): integer inputs narrowed for TensorRT before 10 are refused where they would wrap


def test_int64_inputs_out_of_int32_range_are_refused_not_wrapped():
    from edgecheck.vendors.tensorrt.runners import as_engine_input, engine_dtype

    dtype = engine_dtype("int64", TrtVersion(8, 2, 1))
    assert dtype == np.int32 and engine_dtype("int64", TrtVersion(10, 3)) == np.int64
    ids = np.array([[1, 2**31 - 1, -2**31]], np.int64)
    narrowed = as_engine_input("ids", ids, dtype)
    assert narrowed.dtype == np.dtype("<i4") and narrowed.tolist() == ids.tolist()
    with pytest.raises(ValueError, match=r"input ids: values 0\.\.2147483648 do not fit int32.*would wrap"):
        as_engine_input("ids", np.array([0, 2**31], np.int64), dtype)
    with pytest.raises(ValueError, match="input ids"):
        as_engine_input("ids", np.array([-2**31 - 1], np.int64), dtype)


def test_the_trtexec_runner_refuses_an_int64_feed_that_would_wrap_before_running_anything(tmp_path):
    from edgecheck.vendors.tensorrt.engine import EngineBuild
    from edgecheck.vendors.tensorrt.runners import TrtexecRunner

    never = tmp_path / "trtexec"
    never.write_text("#!/bin/sh\ntouch ran\n")  # a stand-in that must not be reached
    never.chmod(0o755)
    build = EngineBuild(tmp_path / "engine.plan", None, tmp_path / "build.log", TrtVersion(8, 5, 2), True)
    runner = TrtexecRunner(tmp_path / "job.trtjob", build, BuildSettings("fp16"), str(never), [("ids", "int64")],
                           [("y", "float32")])
    with pytest.raises(ValueError, match="input ids: values .* do not fit int32"):
        runner._infer_impl({"ids": np.array([[5_000_000_000]], np.int64)})
    assert not (tmp_path / "ran").exists()


def test_timing_inputs_are_written_in_the_engines_type(tmp_path):
    from edgecheck.vendors.tensorrt.timing import write_inputs

    feed = {"ids": np.arange(6, dtype=np.int64).reshape(1, 6), "x": np.ones((1, 3), np.float64)}
    paths = write_inputs(feed, tmp_path, TrtVersion(8, 2, 1))
    # trtexec reads the binding's byte count: INT32 and FP32 for these before TensorRT 10
    assert np.fromfile(paths["ids"], "<i4").tolist() == list(range(6))
    assert np.fromfile(paths["x"], "<f4").tolist() == [1.0, 1.0, 1.0]
    assert os.path.getsize(write_inputs(feed, tmp_path, TrtVersion(10, 3))["ids"]) == 6 * 8
    with pytest.raises(ValueError, match="input ids"):
        write_inputs({"ids": np.array([2**40], np.int64)}, tmp_path, TrtVersion(8, 6))


def test_a_jetpack_upgrade_with_the_same_tensorrt_rebuilds_and_a_failed_build_leaves_nothing_used(tmp_path, calls,
                                                                                                  monkeypatch):
    trtexec, job = stand_in(tmp_path, "v8201"), _job(tmp_path)
    settings = BuildSettings("fp16")
    (tmp_path / "etc").mkdir()
    release = tmp_path / "etc" / "nv_tegra_release"
    release.write_text("# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t210ref, EABI: aarch64\n")
    first = ensure_engine(job, settings, str(trtexec), timeout_s=60, root=str(tmp_path))
    release.write_text("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64\n")
    upgraded = ensure_engine(job, settings, str(trtexec), timeout_s=60, root=str(tmp_path))
    assert upgraded.engine != first.engine and not upgraded.cached  # L4T (CUDA, driver) is in the key
    # a build that fails leaves no engine, no partial file and no layer info a later run could pick up
    release.write_text("# R32 (release), REVISION: 7.2\n")
    monkeypatch.setenv("STAND_IN_MODE", "fail")
    with pytest.raises(EngineBuildError):
        ensure_engine(job, settings, str(trtexec), timeout_s=60, root=str(tmp_path))
    folders = [f for f in (job.parent / (job.name + ".engines")).iterdir() if f not in (first.engine.parent,
                                                                                         upgraded.engine.parent)]
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == [".lock", "build.log"]
