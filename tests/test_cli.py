"""The `edgecheck` command, run in-process: devices, schema, and check (pytest's exit codes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S

from edgecheck.cli import main

BUILTIN = {
    "host": ["onnxruntime", "tflite"],
    "jetson-nano": ["tensorrt", "onnxruntime", "tflite", "onnxruntime-trt", "onnxruntime-cuda"],
    "jetson-xavier-nx": ["tensorrt", "onnxruntime", "onnxruntime-trt", "onnxruntime-cuda"],
    "raspberry-pi-4b": ["tflite", "onnxruntime"],
    "rk3562": ["rknn", "onnxruntime"],
    "rk3566": ["rknn", "onnxruntime"],
    "rk3568": ["rknn", "onnxruntime"],
    "rk3576": ["rknn", "onnxruntime"],
    "rk3588": ["rknn", "onnxruntime"],
}

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 1.0
      parity: {atol: 1.0e-5}
      size_mb: 1
"""


def test_devices_lists_the_built_in_profiles_with_their_backends(capsys):
    assert main(["devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "device" and "backends" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(BUILTIN) <= set(rows)
    for name, backends in BUILTIN.items():
        assert rows[name].endswith(", ".join(backends)), rows[name]
    assert "6 TOPS NPU" in rows["rk3588"] and "8x aarch64" in rows["rk3588"]
    assert [line.split()[0] for line in lines[1:]] == sorted(rows)


def test_devices_json(capsys):
    assert main(["devices", "--json"]) == 0
    profiles = json.loads(capsys.readouterr().out)
    assert set(BUILTIN) <= set(profiles)
    for name, backends in BUILTIN.items():
        assert profiles[name]["name"] == name
        assert list(profiles[name]["backends"]) == backends
    assert profiles["rk3588"]["compute"] == {"tops": 6.0, "unit": "NPU"}
    assert profiles["host"]["cpu"]["cores"] >= 1  # filled from this machine


def test_devices_with_a_project_folder(tmp_path, capsys):
    (tmp_path / "rk3588-2core.yaml").write_text(
        "name: rk3588-2core\nextends: rk3588\nbackends:\n  onnxruntime: {precisions: [fp32], threads: 2}\n")
    assert main(["devices", "--devices-dir", str(tmp_path), "--json"]) == 0
    profiles = json.loads(capsys.readouterr().out)
    assert {*BUILTIN, "rk3588-2core"} <= set(profiles)
    assert profiles["rk3588-2core"]["compute"]["unit"] == "NPU"
    # extends overrides only the fields it gives: onnxruntime's entry changes, rknn stays
    assert list(profiles["rk3588-2core"]["backends"]) == ["rknn", "onnxruntime"]
    mine = profiles["rk3588-2core"]["backends"]["onnxruntime"]
    assert (mine["precisions"], mine["threads"]) == (["fp32"], 2)
    assert mine["estimate"] == profiles["rk3588"]["backends"]["onnxruntime"]["estimate"]  # merged field-wise


def test_devices_with_a_missing_folder_is_an_error(tmp_path, capsys):
    assert main(["devices", "--devices-dir", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "edgecheck:" in captured.err and "not found" in captured.err


def test_schema_prints_the_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "targets" in schema["properties"]
    assert schema["title"] == "edgecheck spec"


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: edgecheck" in capsys.readouterr().err


def test_check_passing_spec_returns_0(pytester, spec_project, monkeypatch, capsys):
    spec_project(SPEC)
    monkeypatch.chdir(pytester.path)
    assert main(["check", "--", "-p", "no:cacheprovider"]) == 0
    out = capsys.readouterr().out
    assert "2 passed" in out and "edgecheck summary" in out


def test_check_breached_budget_returns_1(pytester, spec_project, monkeypatch, capsys):
    spec_project(SPEC.replace("size_mb: 1", "size_mb: 0.00001"))
    monkeypatch.chdir(pytester.path)
    assert main(["check", "specs", "--", "-p", "no:cacheprovider"]) == 1
    out = capsys.readouterr().out
    assert "1 passed" in out and "1 failed" in out
    assert "size budget breached" in out


def test_check_unknown_target_is_a_usage_error(pytester, spec_project, monkeypatch, capsys):
    spec_project(SPEC)
    monkeypatch.chdir(pytester.path)
    assert main(["check", "--target", "nope", "--", "-p", "no:cacheprovider"]) == 4
    assert "unknown device 'nope'" in capsys.readouterr().err


def test_check_options_reach_pytest(pytester, spec_project, monkeypatch, capsys):
    spec_project(SPEC + "  rk3588:\n    backends: [onnxruntime, rknn]\n    budgets: {size_mb: 1}\n")
    monkeypatch.chdir(pytester.path)
    # --target selects the section, --backend the backend, --junitxml writes the report, -- passes -k on
    code = main(["check", "--target", "rk3588", "--backend", "onnxruntime", "--junitxml", "r.xml",
                 "--", "-p", "no:cacheprovider", "-k", "size"])
    assert code == 0
    assert "1 passed" in capsys.readouterr().out
    assert (pytester.path / "r.xml").is_file()
    assert "rk3588-onnxruntime-none-size" in (pytester.path / "r.xml").read_text()


def test_check_strict_fails_on_an_unavailable_backend(pytester, spec_project, monkeypatch, capsys):
    # ONNX Runtime's CUDA provider: this onnxruntime build has only the CPU one
    spec_project(SPEC.replace("backends: [onnxruntime]", "backends: [onnxruntime-cuda]"))
    monkeypatch.chdir(pytester.path)
    assert main(["check", "--", "-p", "no:cacheprovider"]) == 0  # skipped
    assert "3 skipped" in capsys.readouterr().out
    assert main(["check", "--strict", "--", "-p", "no:cacheprovider"]) == 1
    assert "3 failed" in capsys.readouterr().out


def _console_script() -> str | None:
    found = shutil.which("edgecheck")
    if found:
        return found
    beside = Path(sys.executable).parent / "edgecheck"
    return str(beside) if beside.is_file() else None


def test_console_script_is_installed():
    script = _console_script()
    assert script is not None, "the edgecheck console script is not installed"
    result = subprocess.run([script, "schema"], capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr
    assert "targets" in json.loads(result.stdout)["properties"]


def test_the_command_says_its_version_and_every_subcommand_says_what_it_does(capsys):
    """Issue 18, item 7: `--version`, and a `--help` for each subcommand that is more than its usage line."""
    from edgecheck import __version__
    from edgecheck.cli import build_parser, main

    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0 and capsys.readouterr().out.strip() == f"edgecheck {__version__}"
    commands = next(a for a in build_parser()._actions if getattr(a, "choices", None))
    for name, sub in commands.choices.items():
        assert sub.description, f"`edgecheck {name} --help` says nothing about what it does"
