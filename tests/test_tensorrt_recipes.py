"""trtexec's command lines per TensorRT version, flag by flag; build settings; the tensorrt-* recipes and the
.trtjob they write (no TensorRT here: nothing in this file builds an engine)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgecheck.compress import RecipeContext, get_recipe
from edgecheck.errors import RecipeError
from edgecheck.formats import register_format
from edgecheck.vendors.tensorrt.format import TensorrtJobFormat, read_build_settings
from edgecheck.vendors.tensorrt.trtexec import (METADATA_KEY, BuildSettings, ExportPaths, InputShapes, SettingsError,
                                                TimingArgs, TrtVersion, UnsupportedFlag, build_command, output_command,
                                                timing_command)

import edgecheck.vendors.tensorrt.recipes  # noqa: F401  (registers the recipes; the installed entry points may predate them)

V801, V821, V840, V852, V862, V103 = (TrtVersion(8, 0, 1), TrtVersion(8, 2, 1), TrtVersion(8, 4, 0), TrtVersion(8, 5, 2),
                                      TrtVersion(8, 6, 2), TrtVersion(10, 3, 0))


@pytest.fixture(autouse=True)
def _format() -> None:
    register_format(TensorrtJobFormat)


# -- versions


@pytest.mark.parametrize("text, expected", [
    ("8.2.1", (8, 2, 1)), ("v8201", (8, 2, 1)), ("v100300", (10, 3, 0)), ("TensorRT v8502", (8, 5, 2)),
    # banners and lines verbatim from RESEARCH20 2.1, 2.2, 2.4 and the 10.5 help (index id 9493737216)
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --workspace=2048 --onnx=weights/culane_18-INT32.onnx",
     (8, 2, 1)),
    ("&&&& PASSED TensorRT.trtexec [TensorRT v8400] # trtexec --loadEngine=mnist16.trt --batch=16", (8, 4, 0)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v100500] [b18] # trtexec --help", (10, 5, 0)),
    ("[07/14/2023-11:52:09] [I] TensorRT version: 8.2.1", (8, 2, 1)),
    ("TensorRT version: 8.6.3", (8, 6, 3)), ("v8601", (8, 6, 1)),
])
def test_versions_parse_from_every_form_trtexec_prints(text, expected):
    assert TrtVersion.parse(text) == TrtVersion(*expected)


def test_a_text_without_a_version_is_refused():
    with pytest.raises(ValueError, match="no TensorRT version"):
        TrtVersion.parse("usage: trtexec [options]")


# -- build commands, flag by flag


def _build(version: TrtVersion, settings: BuildSettings, layer_info: str | None = "l.json") -> list[str]:
    return build_command("/usr/src/tensorrt/bin/trtexec", version, settings, "m.onnx", "m.plan", layer_info)


def test_fp16_build_per_version():
    fp16 = BuildSettings("fp16", workspace_mb=1024)
    head = ["/usr/src/tensorrt/bin/trtexec", "--onnx=m.onnx", "--saveEngine=m.plan", "--fp16"]
    assert _build(V801, fp16, None) == head + ["--workspace=1024", "--nvtxMode=verbose", "--buildOnly"]
    assert _build(V821, fp16) == head + ["--workspace=1024", "--profilingVerbosity=detailed", "--exportLayerInfo=l.json",
                                         "--buildOnly"]
    for version in (V840, V852):
        assert _build(version, fp16) == head + ["--memPoolSize=workspace:1024", "--profilingVerbosity=detailed",
                                                "--exportLayerInfo=l.json", "--buildOnly"]
    for version in (V862, V103):
        assert _build(version, fp16) == head + ["--memPoolSize=workspace:1024", "--profilingVerbosity=detailed",
                                                "--exportLayerInfo=l.json", "--skipInference"]
    assert not any(flag.startswith("--workspace") for flag in _build(V103, fp16))  # 10.x refuses --workspace


def test_precision_flags_per_version():
    assert "--noTF32" in _build(V821, BuildSettings("fp32"))
    for version in (V801, V821, V840, V852, V862):
        flags = _build(version, BuildSettings("int8"), None if version == V801 else "l.json")
        assert "--int8" in flags and "--fp16" in flags and "--stronglyTyped" not in flags
    flags = _build(V103, BuildSettings("int8"))
    assert "--stronglyTyped" in flags and "--int8" not in flags and "--fp16" not in flags


def test_dla_shapes_and_builder_level():
    shapes = {"images": InputShapes((1, 3, 64, 64), (4, 3, 64, 64), (8, 3, 64, 64)),
              "input:0": InputShapes((1, 2), (1, 2), (1, 2))}
    settings = BuildSettings("fp16", dla_core=1, builder_optimization_level=4, shapes=shapes)
    flags = _build(V862, settings)
    assert flags[flags.index("--useDLACore=1") + 1] == "--allowGPUFallback"
    assert "--builderOptimizationLevel=4" in flags
    # names holding ':' wrapped in single quotes, as trtexec's help says ("ex: 'Input:0'")
    assert "--minShapes=images:1x3x64x64,'input:0':1x2" in flags
    assert "--optShapes=images:4x3x64x64,'input:0':1x2" in flags
    assert "--maxShapes=images:8x3x64x64,'input:0':1x2" in flags
    no_fallback = _build(V852, BuildSettings("int8", dla_core=0, gpu_fallback=False))
    assert "--useDLACore=0" in no_fallback and "--allowGPUFallback" not in no_fallback


def test_flags_a_version_lacks_are_refused_naming_the_version():
    with pytest.raises(UnsupportedFlag, match=r"TensorRT 8\.5\.2 cannot take builder_optimization_level.*8\.6"):
        _build(V852, BuildSettings("fp16", builder_optimization_level=3))
    with pytest.raises(UnsupportedFlag, match=r"TensorRT 8\.0\.1 cannot take --exportLayerInfo"):
        _build(V801, BuildSettings("fp16"))


def test_timing_and_output_commands():
    settings = BuildSettings("fp16", dla_core=0, shapes={"x": InputShapes((1, 4), (2, 4), (8, 4))})
    exports = ExportPaths(times="t.json", profile="p.json")
    argv = timing_command("trtexec", V852, settings, "m.plan", exports, TimingArgs(warmup_ms=500, iterations=50,
                                                                                 duration_s=2.5), {"x": "x.bin"})
    assert argv == ["trtexec", "--loadEngine=m.plan", "--useDLACore=0", "--shapes=x:2x4", "--loadInputs=x:x.bin",
                    "--warmUp=500", "--iterations=50", "--duration=3", "--useSpinWait", "--exportTimes=t.json",
                    "--exportProfile=p.json", "--separateProfileRun"]
    out = output_command("trtexec", V103, settings, "m.plan", {"x": "a.bin", "y:0": "b.bin"}, "o.json", {"x": (3, 4)})
    assert out == ["trtexec", "--loadEngine=m.plan", "--useDLACore=0", "--shapes=x:3x4", "--loadInputs=x:a.bin,'y:0':b.bin",
                   "--warmUp=0", "--iterations=1", "--duration=0", "--exportOutput=o.json"]
    assert all(isinstance(a, str) for a in argv + out)  # argv lists, never a shell string


# -- settings


def test_settings_round_trip_and_refusals():
    settings = BuildSettings("int8", workspace_mb=512, dla_core=1, gpu_fallback=False, builder_optimization_level=2,
                             shapes={"x": InputShapes((1, 4), (2, 4), (8, 4))})
    assert BuildSettings.from_json(settings.to_json()) == settings
    assert settings.to_json() == BuildSettings.from_json(settings.to_json()).to_json()  # canonical: a cache key
    for kwargs, field in [({"precision": "int4"}, "precision"), ({"precision": "fp32", "dla_core": 0}, "dla_core"),
                          ({"precision": "fp16", "workspace_mb": 0}, "workspace_mb"),
                          ({"precision": "fp16", "builder_optimization_level": 6}, "builder_optimization_level")]:
        with pytest.raises(SettingsError, match=field):
            BuildSettings(**kwargs)
    with pytest.raises(SettingsError, match="min <= opt <= max"):
        InputShapes((4, 4), (2, 4), (8, 4))
    for text, said in [("{", "not JSON"), ("[]", "not a JSON object"), ('{"format": 9}', "format 9"),
                       ('{"format": 1, "precision": "fp16", "colour": 1}', "unknown field colour"),
                       ('{"format": 1, "precision": "fp16", "shapes": {"x": {"min": [1]}}}', "shapes.x needs")]:
        with pytest.raises(SettingsError, match=said):
            BuildSettings.from_json(text)


# -- recipes and the .trtjob


def _matmul(path: Path, batch: int | str = 1, qdq: bool = False) -> Path:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.arange(16, dtype=np.float32) / 16)
    nodes, source = [], "x"
    inits = [weight]
    if qdq:
        inits += [helper.make_tensor("s", TensorProto.FLOAT, [], [0.05]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        source = "xd"
    nodes.append(helper.make_node("MatMul", [source, "w"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _make(recipe: str, model: Path, params: dict, folder: Path):
    import tempfile

    step = get_recipe(recipe)
    out = Path(tempfile.mkdtemp(prefix=recipe, dir=folder))
    return step.make(model, step.parse_params(params), RecipeContext(None, out))


def test_fp16_job_round_trip_keeps_a_valid_onnx_with_its_settings(tmp_path):
    model = _matmul(tmp_path / "m.onnx")
    artifact = _make("tensorrt-fp16", model, {"workspace_mb": 256, "dla_core": 1, "gpu_fallback": False}, tmp_path)
    assert artifact.path.name == "m.tensorrt-fp16.trtjob"
    loaded = onnx.load(str(artifact.path))
    onnx.checker.check_model(loaded)  # still a valid ONNX ModelProto
    settings = BuildSettings.from_json(next(p.value for p in loaded.metadata_props if p.key == METADATA_KEY))
    assert settings == BuildSettings("fp16", workspace_mb=256, dla_core=1, gpu_fallback=False)
    assert read_build_settings(artifact.path) == settings
    before, after = onnx.load(str(model)).graph, loaded.graph
    assert before.SerializeToString() == after.SerializeToString()  # the graph itself unchanged
    x = np.ones((1, 4), np.float32)  # it runs as the ONNX it is
    ran = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(ran, x @ (np.arange(16, dtype=np.float32).reshape(4, 4) / 16), rtol=1e-6)
    assert "not built here" in artifact.notes["engine"] and "Jetson" in artifact.notes["engine"]
    assert "ONNX Runtime (CPU) loads" in artifact.notes["verified"] and "no TensorRT build" in artifact.notes["verified"]
    assert artifact.notes["changed.format"] == "onnx -> tensorrt-job"


def test_dynamic_inputs_need_shapes_naming_the_input(tmp_path):
    model = _matmul(tmp_path / "m.onnx", batch="n")
    with pytest.raises(RecipeError, match=r"input 'x' has dynamic dimensions \['n', 4\].*shapes"):
        _make("tensorrt-fp32", model, {}, tmp_path)
    artifact = _make("tensorrt-fp32", model, {"shapes": {"x": {"min": [1, 4], "opt": [2, 4], "max": [8, 4]}}}, tmp_path)
    assert read_build_settings(artifact.path).shapes == {"x": InputShapes((1, 4), (2, 4), (8, 4))}
    with pytest.raises(RecipeError, match=r"shapes: the model has no input 'images'"):
        _make("tensorrt-fp16", model, {"shapes": {"images": {"min": [1], "opt": [1], "max": [1]}}}, tmp_path)
    with pytest.raises(RecipeError, match=r"shapes.x.max \[8, 5\] does not fit input 'x'"):
        _make("tensorrt-int8", _matmul(tmp_path / "q.onnx", batch="n", qdq=True),
              {"shapes": {"x": {"min": [1, 4], "opt": [2, 4], "max": [8, 5]}}}, tmp_path)


def test_parameter_refusals_name_the_parameter():
    fp32, fp16 = get_recipe("tensorrt-fp32"), get_recipe("tensorrt-fp16")
    with pytest.raises(RecipeError, match="dla_core: the DLA runs FP16 and INT8 only"):
        fp32.parse_params({"dla_core": 0})
    with pytest.raises(RecipeError, match="gpu_fallback applies only with dla_core"):
        fp16.parse_params({"gpu_fallback": False})
    with pytest.raises(RecipeError, match="builder_optimization_level"):
        fp16.parse_params({"builder_optimization_level": 9})
    with pytest.raises(RecipeError, match="dla_core"):
        fp16.parse_params({"dla_core": 2})
    with pytest.raises(RecipeError, match="unknown parameter.*did you mean workspace_mb"):
        fp16.parse_params({"workspace": 10})


def test_int8_takes_only_a_qdq_graph(tmp_path):
    with pytest.raises(RecipeError, match="no calibrator.*random.*int8-static"):
        _make("tensorrt-int8", _matmul(tmp_path / "f.onnx"), {}, tmp_path)
    qdq = _matmul(tmp_path / "q.onnx", qdq=True)
    with pytest.raises(RecipeError, match="Q/DQ nodes.*use tensorrt-int8"):
        _make("tensorrt-fp16", qdq, {}, tmp_path)
    artifact = _make("tensorrt-int8", qdq, {"dla_core": 0}, tmp_path)
    assert read_build_settings(artifact.path).precision == "int8"
    assert "--stronglyTyped on 10.x" in artifact.notes["did"]


def test_int8_refuses_onnxruntimes_qoperator_graph(tmp_path):
    graph = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 4])])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(RecipeError, match="DynamicQuantizeLinear.*Q/DQ pairs.*int8-static"):
        _make("tensorrt-int8", path, {}, tmp_path)


def test_a_trtjob_without_settings_is_refused_naming_the_file(tmp_path):
    from edgecheck.errors import ModelError

    path = tmp_path / "bare.trtjob"
    path.write_bytes(_matmul(tmp_path / "m.onnx").read_bytes())
    with pytest.raises(ModelError, match=r"bare.trtjob.*edgecheck.tensorrt.build.*0 such entries"):
        TensorrtJobFormat().inspect(path)


def test_pyproject_names_the_new_entry_points_and_each_imports():
    import importlib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    groups = project["project"]["entry-points"]
    wanted = {("edgecheck.backends", "tensorrt"), ("edgecheck.backends", "onnxruntime-trt"),
              ("edgecheck.backends", "onnxruntime-cuda"), ("edgecheck.formats", "tensorrt-job"),
              ("edgecheck.recipes", "tensorrt")}
    for group, name in wanted:
        target = groups[group][name]
        module, _, attribute = target.partition(":")
        loaded = importlib.import_module(module)
        assert not attribute or getattr(loaded, attribute)
    assert json.loads(json.dumps(sorted(wanted)))  # (all five checked above)
