"""Artifact formats are plug-ins: a format registered by hand reads its own suffix; a broken format plugin
is named in the error of the file it might have read; a vendor's options in a device profile are read by
its own model, and a profile says whether it is this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest


from conftest import HANG_GUARD_S, make_classifier

from edgecheck.backends.base import Availability, Backend, file_suffixes
from edgecheck.devices import load_profiles
from edgecheck.errors import BackendUnavailable, DeviceError, ModelError
from edgecheck.execute import reference_backend
from edgecheck.formats import ArtifactFormat, format_of, format_owning, inspect_model, register_format, unregister_format
from edgecheck.model import ModelInfo, TensorInfo, file_sha256


class EchoFormat(ArtifactFormat):
    """A made-up format: a text file naming its one input's width."""

    name = "echo"
    suffixes = (".echo", ".ech")

    def inspect(self, path: Path) -> ModelInfo:
        width = int(path.read_text())
        tensor = TensorInfo("x", "float32", (1, width))
        return ModelInfo(path, self.name, (tensor,), (tensor,), path.stat().st_size, 0, {}, {}, file_sha256([path]))


class EchoBackend(Backend):
    name = "test-echo-format"
    formats = ("echo",)

    def availability(self) -> Availability:
        return Availability(True)

    def _load_impl(self, artifact, options):
        raise NotImplementedError


@pytest.fixture
def echo_format() -> Iterator[None]:
    register_format(EchoFormat)
    yield
    unregister_format("echo")


def test_a_format_registered_by_hand_reads_its_own_suffixes(tmp_path, echo_format):
    (tmp_path / "m.ech").write_text("7")
    assert format_of(tmp_path / "m.echo").name == "echo"
    info = inspect_model(tmp_path / "m.ech")
    assert info.format == "echo" and info.inputs[0].shape == (1, 7)
    assert file_suffixes(EchoBackend) == (".echo",)  # a backend names the format; the format owns the suffix
    # no backend says it gives the reference of echo models: never another format's runtime, a skip saying why
    with pytest.raises(BackendUnavailable, match="no installed backend gives the reference outputs of .echo models"):
        reference_backend(tmp_path / "m.echo")


def test_once_unregistered_the_suffix_is_read_as_onnx_again(tmp_path):
    register_format(EchoFormat)
    unregister_format("echo")
    (tmp_path / "m.echo").write_text("7")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        inspect_model(tmp_path / "m.echo")


def test_the_shipped_formats_read_their_files(tmp_path):
    model = tmp_path / "clf.onnx"
    make_classifier(model)
    assert format_of(model).name == "onnx" and inspect_model(model).format == "onnx"
    assert format_of(tmp_path / "a.tflite").name == "tflite" and format_of(tmp_path / "a.rknn").name == "rknn"
    flatbuffer = tmp_path / "renamed.bin"
    flatbuffer.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(8))
    assert format_of(flatbuffer, sniff=True).name == "tflite"  # whatever its name, by its first bytes
    assert format_of(flatbuffer).name == "onnx"  # not sniffed unless asked
    assert format_owning(flatbuffer) is None  # no format owns .bin: no fallback here
    assert not format_of(tmp_path / "a.rknn").self_contained  # read through the build folder beside it
    assert reference_backend(tmp_path / "a.tflite") == "tflite" and reference_backend(model) == "onnxruntime"


def test_a_broken_format_plugin_is_named_in_the_error_of_a_file_it_might_read(tmp_path):
    site = tmp_path / "site"
    dist = site / "weird_format-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: weird-format\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgecheck.formats]\nweird = weird_format_missing:WeirdFormat\n")
    (tmp_path / "m.weird").write_text("?")
    code = textwrap.dedent(f"""
        from edgecheck.errors import ModelError
        from edgecheck.formats import broken_formats, inspect_model, known_formats
        assert "weird" in known_formats(), known_formats()
        try:
            inspect_model({str(tmp_path / "m.weird")!r})
        except ModelError as exc:
            print(exc)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert ran.returncode == 0, ran.stderr
    assert "no installed artifact format reads .weird files" in ran.stdout
    assert ("weird: its plugin weird_format_missing:WeirdFormat failed to import: ModuleNotFoundError"
            in ran.stdout), ran.stdout


def test_a_vendors_profile_options_are_read_by_its_own_model(tmp_path):
    profiles = load_profiles()
    rknn = profiles["rk3588"].backends["rknn"]
    assert rknn.platform == "rk3588" and rknn.options.compiler_estimate.clock_ghz > 0
    assert profiles["rk3588"].as_data()["backends"]["rknn"]["platform"] == "rk3588"  # beside the common fields
    (tmp_path / "board.yaml").write_text("extends: rk3588\nbackends:\n  rknn: {compiler_estimate: {clock_ghz: 0}}\n")
    with pytest.raises(DeviceError, match=r"board.yaml: backends\.rknn\.compiler_estimate\.clock_ghz: "):
        load_profiles([tmp_path])
    (tmp_path / "board.yaml").write_text("compute: {unit: CPU}\nbackends:\n  onnxruntime: {precisions: [fp32], "
                                         "compiler_estimate: 3}\n")
    with pytest.raises(DeviceError, match=r"board.yaml: backends\.onnxruntime\.compiler_estimate: Extra inputs"):
        load_profiles([tmp_path])  # onnxruntime takes no compiler estimate: only rknn's model knows the field


def test_a_profile_says_whether_it_is_this_machine(tmp_path):
    (tmp_path / "workstation.yaml").write_text("compute: {unit: CPU}\nthis_machine: true\n"
                                               "backends:\n  onnxruntime: {precisions: [fp32]}\n")
    (tmp_path / "bigger-host.yaml").write_text("extends: host\nmemory_gb: 512\n")
    profiles = load_profiles([tmp_path])
    assert profiles["host"].is_host and profiles["workstation"].is_host
    assert not profiles["rk3588"].is_host
    assert not profiles["bigger-host"].is_host  # a profile built on host's describes another machine


def test_a_project_s_own_host_profile_is_still_this_machine(tmp_path):
    """A project folder may override a built-in profile; replacing `host` (say, to pin its threads) must not
    turn this machine into a device whose figures are stand-ins. Saying this_machine: false still can."""
    (tmp_path / "host.yaml").write_text("compute: {unit: CPU}\nbackends:\n  onnxruntime: {precisions: [fp32], "
                                        "threads: 2}\n")
    host = load_profiles([tmp_path])["host"]
    assert host.is_host and host.backends["onnxruntime"].threads == 2
    (tmp_path / "host.yaml").write_text("compute: {unit: CPU}\nthis_machine: false\n"
                                        "backends:\n  onnxruntime: {precisions: [fp32]}\n")
    assert not load_profiles([tmp_path])["host"].is_host


def test_a_format_plugin_that_claims_a_shipped_suffix_is_refused_by_name(tmp_path):
    """Two readers of .tflite would make which one reads a file depend on install order: the plug-in is refused,
    whatever its entry point's name, and .tflite stays the shipped format's."""
    site = tmp_path / "site"
    (site / "rival").mkdir(parents=True)
    (site / "rival" / "__init__.py").write_text(
        "from edgecheck.vendors.tflite.format import TfliteFormat\n\n"
        "class Rival(TfliteFormat):\n    name = 'aaa-rival'\n")
    dist = site / "rival-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rival\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgecheck.formats]\naaa-rival = rival:Rival\n")
    code = ("from edgecheck.formats import broken_formats, format_of\n"
            "print(format_of('m.tflite').name)\nprint(broken_formats()['aaa-rival'])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["tflite", "its suffix .tflite is already the 'tflite' format's"]
