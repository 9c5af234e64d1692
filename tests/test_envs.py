"""Tool environments (`edgecheck env`): definitions, where they live, their states, and creating a real
tiny one. Test definitions come from a tmp folder named in $EDGECHECK_ENV_DEFS; their requirements
are empty, so pip never runs and nothing touches the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S

from edgecheck import envs
from edgecheck.cli import main
from edgecheck.envs.definitions import _simple_meets
from edgecheck.envs import (EnvError, create_env, env_definition, env_root, env_status, find_env, known_envs,
                            load_definitions, read_definition, run_env_env, unavailable_reason)

TINY = """
description: a tool for tests
python: ">=3.8"
requirements: []
check: {check}
size: a few kB
"""


def _define(folder: Path, name: str = "tiny", check: str = 'import sys; print("tool 1.0")', **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = TINY.format(check=json.dumps(check)) + "".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items())
    (folder / f"{name}.yaml").write_text(text)
    return folder / f"{name}.yaml"


@pytest.fixture
def defs(tmp_path, monkeypatch):
    """A definitions folder with `tiny`, and an empty env root; no override variables."""
    folder = tmp_path / "defs"
    _define(folder)
    monkeypatch.setenv("EDGECHECK_ENV_DEFS", str(folder))
    monkeypatch.setenv("EDGECHECK_ENVS", str(tmp_path / "envs"))
    monkeypatch.delenv("EDGECHECK_ENV_TINY", raising=False)
    return folder


def _quiet(line: str) -> None:
    pass


def test_the_shipped_onnx2tf_definition_validates():
    definition = env_definition("onnx2tf")
    assert definition.requirements == ["onnx2tf==1.29.24"]
    assert definition.python == ">=3.10,<3.13"
    assert "onnx2tf.__version__" in definition.check and "GB" in definition.size
    assert "onnx2tf" in known_envs()


def test_the_rknn_definition_installs_a_cpu_torch_then_the_toolkit_without_its_pins_then_the_rest():
    definition = env_definition("rknn")
    calls = definition.pip_calls()
    assert calls[0] == ["torch==2.13.0"]
    assert calls[1] == ["--no-deps", "rknn-toolkit2==2.5.0"]
    assert "opencv-python-headless>=4.5.5.64" in calls[2] and "numpy<=1.26.4" in calls[2]
    assert len(calls) == 3


def test_further_pip_calls_change_the_digest_and_refuse_pip_options(tmp_path):
    from edgecheck.envs import read_definition

    plain = read_definition(_define(tmp_path, "plain"))
    stepped = read_definition(_define(tmp_path, "stepped", then=[{"requirements": ["six"], "no_deps": True}]))
    assert stepped.pip_calls() == [["--no-deps", "six"]] and plain.pip_calls() == []
    assert plain.digest() != stepped.digest()
    with pytest.raises(EnvError, match=r"bad\.yaml: then\.0\.requirements: .*'--pre' is not a requirement"):
        read_definition(_define(tmp_path, "bad", then=[{"requirements": ["--pre"]}]))


def test_an_unknown_name_lists_the_known_ones(defs):
    with pytest.raises(EnvError, match=r"unknown tool environment 'nope' \(known: onnx2tf, rknn, tiny\)"):
        env_definition("nope")
    assert "unknown tool environment 'nope'" in unavailable_reason("nope")


@pytest.mark.parametrize("text, field", [
    ("requirement: [x]\n", "requirement"),                       # a misspelt field
    ("requirements: onnx2tf\n", "requirements"),                 # not a list
    ("requirements: ['not a == requirement !']\n", "requirements"),
    ("python: 'at least 3.10'\n", "python"),
    ("check: 'import (\\n'\n", "check"),
    ("description: \"two\\nlines\"\n", "description"),
])
def test_a_broken_definition_names_its_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    base = {"description": "d", "python": ">=3.10", "requirements": [], "check": "pass", "size": "s"}
    key = text.split(":")[0]
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in base.items() if k != key) + text)
    with pytest.raises(EnvError) as info:
        read_definition(path)
    assert str(info.value).startswith(f"{path}: {field}: ")
    with pytest.raises(EnvError, match="bad.yaml"):
        load_definitions([tmp_path])


def test_a_definition_folder_that_does_not_exist_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECHECK_ENV_DEFS", str(tmp_path / "nowhere"))
    with pytest.raises(EnvError, match="nowhere.*EDGECHECK_ENV_DEFS"):
        known_envs()


def test_env_root_honours_edgecheck_envs_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGECHECK_ENVS", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert env_root() == tmp_path / "home" / ".local" / "share" / "edgecheck" / "envs"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert env_root() == tmp_path / "xdg" / "edgecheck" / "envs"
    monkeypatch.setenv("EDGECHECK_ENVS", str(tmp_path / "mine"))
    assert env_root() == tmp_path / "mine"


def test_missing_then_ready_then_stale_then_broken(defs, tmp_path):
    status = env_status("tiny")
    assert status.state == "missing" and status.env is None and find_env("tiny") is None
    assert "`edgecheck env create tiny` (a few kB)" in status.reason == unavailable_reason("tiny")

    env = create_env("tiny", log=_quiet)
    assert env.path == tmp_path / "envs" / "tiny" and env.tool_version == "tool 1.0" and env.created
    assert env.python == env.bin_dir / "python" and env.python.exists()
    marker = json.loads((env.path / "edgecheck-env.json").read_text())
    assert marker["name"] == "tiny" and marker["requirements"] == [] and marker["tool_version"] == "tool 1.0"
    assert marker["digest"] == env_definition("tiny").digest()
    assert marker["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env_status("tiny").state == "ready" and find_env("tiny") == env and unavailable_reason("tiny") is None
    assert not list((tmp_path / "envs").glob("tiny.tmp-*"))
    # venv wrote the build folder into its scripts; they name where the env lives now
    assert str(env.path) in (env.bin_dir / "activate").read_text()
    assert ".tmp-" not in (env.bin_dir / "activate").read_text()
    done = subprocess.run([str(env.python), "-c", "import sys, os; print(sys.prefix, os.environ['VIRTUAL_ENV'])"],
                          env=run_env_env(env), capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(env.path), str(env.path)]

    _define(defs, check='print("tool 2.0")')
    status = env_status("tiny")
    assert status.state == "stale" and "definition changed" in status.reason
    assert "`edgecheck env create tiny`" in status.reason

    lines: list[str] = []
    rebuilt = create_env("tiny", log=lines.append)
    assert rebuilt.tool_version == "tool 2.0" and env_status("tiny").state == "ready"
    assert not list((tmp_path / "envs").glob("tiny.old-*"))

    lines.clear()
    assert create_env("tiny", log=lines.append) == rebuilt
    assert any("already there" in line for line in lines)

    rebuilt.python.unlink()
    status = env_status("tiny")
    assert status.state == "broken" and "`edgecheck env create tiny`" in status.reason


def test_a_venv_without_a_marker_is_broken_and_create_replaces_it(defs, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "envs" / "tiny")], check=True)
    status = env_status("tiny")
    assert status.state == "broken" and "edgecheck-env.json" in status.reason
    assert "EDGECHECK_ENV_TINY=" in status.reason and "`edgecheck env create tiny`" in status.reason
    assert create_env("tiny", log=_quiet).tool_version == "tool 1.0"
    assert env_status("tiny").state == "ready"


def test_a_failing_check_names_the_step_and_leaves_nothing(defs, tmp_path):
    _define(defs, check='print("no good"); raise SystemExit(3)')
    with pytest.raises(EnvError) as info:
        create_env("tiny", log=_quiet)
    assert info.value.step == "running the definition's check"
    assert "while running the definition's check (exit status 3)" in str(info.value)
    assert "no good" in str(info.value)
    root = tmp_path / "envs"
    assert sorted(p.name for p in root.iterdir()) in ([], ["tiny.lock"])
    assert env_status("tiny").state == "missing"


def test_concurrent_creates_wait_for_each_other_and_build_once(defs, tmp_path):
    _define(defs, check='import time; time.sleep(0.5); print("tool 1.0")')
    code = "from edgecheck.envs import create_env; create_env('tiny')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = [proc.communicate(timeout=HANG_GUARD_S)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    assert sum("created the tiny environment" in out for out in outs) == 1
    assert sum("already there" in out for out in outs) == 1
    assert env_status("tiny").state == "ready"


def test_a_failing_pip_names_the_step_and_shows_its_output(defs, tmp_path):
    """A direct reference pip refuses before touching any index (a few seconds: the venv gets pip)."""
    _define(defs, requirements=["nothing @ file:///nonexistent/nothing.whl"])
    lines: list[str] = []
    with pytest.raises(EnvError) as info:
        create_env("tiny", log=lines.append)
    assert info.value.step == "installing the requirements with pip"
    assert "nothing.whl" in info.value.output and any("nothing.whl" in line for line in lines)
    assert not (tmp_path / "envs" / "tiny").exists() and not list((tmp_path / "envs").glob("tiny.tmp-*"))


def test_a_python_outside_the_definitions_requirement_is_refused(defs, tmp_path):
    _define(defs, python="<3.0")
    with pytest.raises(EnvError, match=r"does not meet the tiny environment's requirement <3.0.*--python"):
        create_env("tiny", log=_quiet)
    assert not (tmp_path / "envs" / "tiny").exists()


def test_create_at_another_path_says_how_to_use_it(defs, tmp_path, monkeypatch):
    lines: list[str] = []
    env = create_env("tiny", path=tmp_path / "elsewhere", log=lines.append)
    assert env.path == tmp_path / "elsewhere" and env.python.exists()
    assert any(f"EDGECHECK_ENV_TINY={tmp_path / 'elsewhere'}" in line for line in lines)
    assert env_status("tiny").state == "missing"
    monkeypatch.setenv("EDGECHECK_ENV_TINY", str(tmp_path / "elsewhere"))
    assert find_env("tiny").path == tmp_path / "elsewhere"


def test_create_never_replaces_a_folder_that_is_not_a_venv(defs, tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "keep.txt").write_text("mine")
    with pytest.raises(EnvError, match="not a virtual environment"):
        create_env("tiny", path=tmp_path / "project", force=True, log=_quiet)
    assert (tmp_path / "project" / "keep.txt").read_text() == "mine"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "theirs")], check=True)
    with pytest.raises(EnvError, match="not made by `edgecheck env create`: pass --force"):
        create_env("tiny", path=tmp_path / "theirs", log=_quiet)
    assert create_env("tiny", path=tmp_path / "theirs", force=True, log=_quiet).tool_version == "tool 1.0"
    (tmp_path / "empty").mkdir()
    assert create_env("tiny", path=tmp_path / "empty", log=_quiet).python.exists()


def test_the_override_variable_needs_no_marker(defs, tmp_path, monkeypatch):
    own = tmp_path / "own"
    monkeypatch.setenv("EDGECHECK_ENV_TINY", str(own))
    status = env_status("tiny")
    assert status.state == "broken" and "EDGECHECK_ENV_TINY" in status.reason
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(own)], check=True)
    status = env_status("tiny")
    assert status.state == "ready" and "user's own" in status.reason
    assert status.env.python == own / "bin" / "python" and status.env.tool_version is None


def test_run_env_env_puts_the_venv_first_and_keeps_user_site_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    env = envs.ToolEnv("x", tmp_path, tmp_path / "bin" / "python", tmp_path / "bin", None, None)
    out = run_env_env(env)
    assert out["PATH"].split(os.pathsep)[0] == str(tmp_path / "bin")
    assert out["VIRTUAL_ENV"] == str(tmp_path) and out["PYTHONNOUSERSITE"] == "1" and "PYTHONPATH" not in out


def test_override_variable_names():
    assert envs.override_var("onnx2tf") == "EDGECHECK_ENV_ONNX2TF"
    assert envs.override_var("rknn-toolkit2.x") == "EDGECHECK_ENV_RKNN_TOOLKIT2_X"


def test_python_requirements_without_packaging():
    assert _simple_meets("3.11.7", ">=3.10,<3.13") and not _simple_meets("3.13.0", ">=3.10,<3.13")
    assert _simple_meets("3.11.7", "==3.11") and not _simple_meets("3.11.7", "!=3.11")
    with pytest.raises(ValueError):
        _simple_meets("3.11.7", "at least 3.10")


def test_cli_env_list_path_and_create(defs, tmp_path, capsys):
    assert main(["env", "path", "tiny"]) == 1
    assert "`edgecheck env create tiny`" in capsys.readouterr().err
    assert main(["env", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("tiny "))
    assert "missing" in line and "a few kB" in line
    assert "onnx2tf" in out

    assert main(["env", "create", "tiny"]) == 0
    assert "created the tiny environment" in capsys.readouterr().out
    assert main(["env", "path", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "envs" / "tiny" / "bin" / "python")
    assert main(["env"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny "))
    assert "ready" in line and "tool 1.0" in line

    _define(defs, check="raise SystemExit(3)")
    assert main(["env", "create", "tiny", "--force"]) == 1
    assert "while running the definition's check" in capsys.readouterr().err
    assert main(["env", "path", "tiny"]) == 1  # the definition changed: stale
    assert main(["env", "create", "nope"]) == 1
    assert "unknown tool environment 'nope'" in capsys.readouterr().err
