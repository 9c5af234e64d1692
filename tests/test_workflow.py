"""The model-gate workflow users copy (.github/workflows/model-gate.yml, issue 18 item 5): it passes GitHub's
workflow schema, names only options and commands that exist, and its shell steps do what they say when run
here with bash on a real project: the plan's targets, each target's environments and cache key, the gate's
pytest command (results JSON, HTML, JUnit, job summary) and the comparison against the base results."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import INT8_SPEC

from edgecheck.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "model-gate.yml"
BIN = Path(sys.executable).parent



def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(job: str, name: str) -> dict:
    for step in _workflow()["jobs"][job]["steps"]:
        if step.get("name", "").startswith(name) or step.get("id") == name:
            return step
    raise AssertionError(f"no step {name!r} in job {job}")


def _expand(script: str, values: dict[str, str]) -> str:
    """The ${{ ... }} expressions a step uses, replaced by what GitHub would put there; any other is an error."""
    def replace(match: re.Match) -> str:
        expression = match.group(1).strip()
        if expression not in values:
            raise AssertionError(f"the test does not know the value of ${{{{ {expression} }}}}")
        return values[expression]
    return re.sub(r"\$\{\{(.*?)\}\}", replace, script)


def _run_step(step: dict, cwd: Path, values: dict[str, str], env: dict[str, str]) -> tuple[int, str]:
    """Run a step's `run` as the runner runs it under `shell: bash` (bash --noprofile --norc -eo pipefail), with
    GITHUB_OUTPUT; returns (exit status, outputs)."""
    assert _workflow()["defaults"]["run"]["shell"] == "bash"
    output = cwd / "github_output.txt"
    output.write_text("")
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(output),
                   **env}
    if "GITHUB_STEP_SUMMARY" not in env:
        environment.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _expand(step["run"], values)],
                          cwd=cwd, env=environment, capture_output=True, text=True, timeout=900)
    assert "Traceback" not in done.stderr, done.stderr
    _run_step.stderr, _run_step.stdout = done.stderr, done.stdout  # type: ignore[attr-defined]
    return done.returncode, output.read_text()


def _outputs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_the_workflow_passes_githubs_workflow_schema():
    check = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if check is None:
        pytest.skip("check-jsonschema is not installed (it is in the dev extra)")
    done = subprocess.run([check, "--builtin-schema", "vendor.github-workflows", *map(str, sorted(
        WORKFLOW.parent.glob("*.yml")))], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_asks_only_to_read_and_names_options_and_commands_that_exist(pytester):
    workflow = _workflow()
    assert workflow["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in workflow["jobs"].values())
    scripts = "\n".join(s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"])
    assert "--edge-strict" in scripts and "pip install -e ." not in scripts
    assert "pytest-edgecheck[" in workflow["env"]["EDGECHECK_REQUIREMENT"]  # by our name, with its extras
    help_text = pytester.runpytest("--help").stdout.str()
    options = set(re.findall(r"--edge-[a-z-]+", scripts))
    assert options and all(option in help_text for option in options), options - set(re.findall(r"--edge-[a-z-]+",
                                                                                                 help_text))
    for line in re.findall(r"edgecheck ([a-z].*)", scripts):
        words = [w for w in shlex.split(re.sub(r"\$\{\{.*?\}\}", "X", line.split(";")[0].split("|")[0].split(">")[0]
                                               .split("||")[0])) if not w.startswith("$")]
        if words[0] == "env" and words[1] == "create":
            words = [*words[:2], "NAME"]
        if words[0] == "compare":
            words = ["compare", "BASE", "HEAD"]
        build_parser().parse_args(words)  # exits (SystemExit) on a command or option that does not exist


def test_the_plan_and_environment_steps_read_the_specs(tmp_path):
    for folder in ("specs", "examples"):  # the shipped example, in a folder of its own (steps write files)
        shutil.copytree(ROOT / folder, tmp_path / folder)
    values = {"matrix.target": "rk3588"}
    env = {"EDGECHECK_SPECS": "specs"}
    status, out = _run_step(_step("plan", "needed"), tmp_path, values, env)
    assert status == 0
    assert json.loads(_outputs(out)["targets"]) == ["host", "raspberry-pi-4b", "rk3588"]
    status, out = _run_step(_step("gate", "envs"), tmp_path, values, env)
    assert status == 0
    found = _outputs(out)
    assert found["names"] == "rknn"  # the rk3588 target runs the rknn-* entries; onnx2tf's are the Pi's
    assert re.fullmatch(r"rknn\.[0-9a-f]{16}", found["key"])
    status, out = _run_step(_step("gate", "envs"), tmp_path, {"matrix.target": "raspberry-pi-4b"}, env)
    assert _outputs(out)["names"] == "onnx2tf"


def test_a_broken_spec_fails_the_plan_job_naming_its_file_and_line(tmp_path):
    for folder in ("specs", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "specs" / "broken.yaml").write_text("edgecheck: 1\nmodel: {path: ../examples/none.onnx}\n"
                                                    "targets: {host: {budgets: {size_mb: 1}}}\n")
    status, out = _run_step(_step("plan", "needed"), tmp_path, {}, {"EDGECHECK_SPECS": "specs"})
    assert status != 0 and "targets=" not in out  # the job fails here: the gate's matrix is never built
    assert "broken.yaml:2: model.path: file not found" in _run_step.stderr  # type: ignore[attr-defined]


def test_a_plan_that_finds_nothing_to_check_fails_instead_of_skipping_the_gate(tmp_path):
    (tmp_path / "specs").mkdir()  # no spec: a green workflow would gate nothing
    status, out = _run_step(_step("plan", "needed"), tmp_path, {}, {"EDGECHECK_SPECS": "specs"})
    assert status != 0 and "targets=" not in out
    assert "nothing would be gated" in _run_step.stdout  # type: ignore[attr-defined]


def test_the_plan_reads_the_projects_ini_options_as_a_run_does(pytester, spec_project, tmp_path):
    """A project's own device profile (ini edge_devices_dir) and spec patterns count, as in `pytest specs`."""
    spec_project(INT8_SPEC.replace("  host:", "  lab-board:"))
    (pytester.path / "devices").mkdir()
    shutil.copy(ROOT / "edgecheck" / "devices" / "profiles" / "raspberry-pi-4b.yaml",
                pytester.path / "devices" / "lab-board.yaml")
    profile = pytester.path / "devices" / "lab-board.yaml"
    profile.write_text(re.sub(r"(?m)^name: .*$", "name: lab-board", profile.read_text()))
    (pytester.path / "specs" / "notes.yaml").write_text("edgecheck: not a spec, and outside the patterns\n")
    pytester.makeini("[pytest]\nedge_devices_dir = devices\nedge_spec_patterns = specs/model.yaml\n")
    status, out = _run_step(_step("plan", "needed"), pytester.path, {}, {"EDGECHECK_SPECS": "specs"})
    assert status == 0, _run_step.stderr  # type: ignore[attr-defined]
    assert json.loads(_outputs(out)["targets"]) == ["lab-board"]


def test_the_gate_runs_the_specs_writes_every_report_and_compares_with_the_base(pytester, spec_project, tmp_path):
    spec_project(INT8_SPEC)
    project = pytester.path
    summary = tmp_path / "summary.md"
    values = {"matrix.target": "host"}
    env = {"EDGECHECK_SPECS": "specs", "GITHUB_STEP_SUMMARY": str(summary)}
    gate = _step("gate", "Check the specs for")
    status, _ = _run_step(gate, project, values, env)
    assert status == 0
    for name in ("results-host.json", "report-host.html", "junit-host.xml"):
        assert (project / name).stat().st_size > 0, name
    assert "| " in summary.read_text() and "int8-dynamic" in summary.read_text()  # the job summary's table
    # the default branch's results, restored by actions/cache into .edgecheck-base: here, the same run's
    (project / ".edgecheck-base").mkdir()
    shutil.copy(project / "results-host.json", project / ".edgecheck-base" / "results-host.json")
    before = summary.read_text()
    status, _ = _run_step(_step("gate", "Compare with the default branch"), project, values, env)
    assert status == 0  # nothing got worse
    assert (project / "compare-host.md").exists()
    assert len(summary.read_text()) > len(before)
    shutil.rmtree(project / ".edgecheck-base")
    status, _ = _run_step(_step("gate", "Compare with the default branch"), project, values, env)
    assert status == 0 and "No results of the default branch for host yet" in summary.read_text()
