"""The proof that every extension has a seam: a third-party distribution (tests/plugins/edgecheck_fakenpu)
adds an artifact format, a backend that runs it, a recipe that makes it and a check kind with its own
budget, through entry points only, and real pytest sessions use all four. Nothing under edgecheck/
names any of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import junit_properties

PLUGIN = Path(__file__).parent / "plugins" / "edgecheck_fakenpu"
ENTRY_POINTS = """\
[edgecheck.formats]
fnpu = edgecheck_fakenpu.format:FnpuFormat

[edgecheck.backends]
fakenpu = edgecheck_fakenpu.backend:FakeNpuBackend

[edgecheck.recipes]
fakenpu = edgecheck_fakenpu.recipe

[edgecheck.checks]
energy = edgecheck_fakenpu.energy:EnergyCheck
"""
SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
compress: [fnpu-compile]
targets:
  host:
    backends: [fakenpu]
    budgets:
      parity: {atol: 0.01}
      energy_mj: %s
"""


@pytest.fixture
def installed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plug-in installed as a distribution: its package and a dist-info with its entry points on the
    subprocess's sys.path (what `pip install edgecheck-fakenpu` leaves in site-packages)."""
    site = pytester.path / "site"
    shutil.copytree(PLUGIN, site / PLUGIN.name)
    dist = site / "edgecheck_fakenpu-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: edgecheck-fakenpu\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return site


def test_a_third_party_format_backend_recipe_and_check_run_in_one_spec(pytester, spec_project, installed):
    spec_project(SPEC % "100")
    result = pytester.runpytest_subprocess("specs", "-v", "-p", "no:cacheprovider", "--junitxml=r.xml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*host-fakenpu-fnpu-compile-parity PASSED*",
                                 "*host-fakenpu-fnpu-compile-energy PASSED*"])
    result.stdout.fnmatch_lines(["  pass*energy*fakenpu*fnpu-compile*energy * mJ*≤ 100 mJ*mJ under"])
    properties = junit_properties(pytester.path / "r.xml")
    energy = properties["host-fakenpu-fnpu-compile-energy"]
    assert energy["edge.energy_mj.unit"] == "mJ" and float(energy["edge.energy_mj"]) > 0
    assert energy["edge.energy.power"] == "2.5" and energy["edge.measured_on"] == "host"
    parity = properties["host-fakenpu-fnpu-compile-parity"]
    assert parity["edge.artifact"] == "clf.fnpu-compile.fnpu"
    assert parity["edge.reference"].startswith("clf.onnx (the original model) on onnxruntime")
    assert "fakenpu" in parity["edge.runtime"]


def test_the_third_party_budget_fails_a_breach_and_is_suggested(pytester, spec_project, installed):
    spec_project(SPEC % "1.0e-9")
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "--edge-suggest")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*energy budget breached*", "*energy_mj*mJ*≤ 1e-9 mJ*over by * mJ*BREACH*"])
    result.stdout.fnmatch_lines(["*edgecheck suggested budgets*", "*energy_mj: *"])


def test_the_spec_schema_is_assembled_with_the_third_party_budget(pytester, spec_project, installed):
    spec_project(SPEC % "'lots'")
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid spec:*targets.host.budgets.energy_mj*valid number*"])
    schema = subprocess.run([sys.executable, "-m", "edgecheck", "schema"], capture_output=True, text=True,
                            check=True, env=os.environ.copy()).stdout
    definitions = json.loads(schema)["$defs"]
    assert definitions["Budgets"]["properties"]["energy_mj"]["description"] == "Max energy of one inference, mJ."
    # the plug-in's recipe is a name an editor completes, and its backend one a target may name
    assert "fnpu-compile" in definitions["RecipeName"]["enum"]
    assert "fnpu-compile" in definitions["RecipeWithParams"]["properties"]
    assert "fakenpu" in definitions["TargetSpec"]["properties"]["backends"]["anyOf"][0]["items"]["enum"]


def test_a_broken_check_plugin_is_named_and_the_rest_runs(pytester, spec_project, installed):
    (installed / "edgecheck_fakenpu-0.1.dist-info" / "entry_points.txt").write_text(
        ENTRY_POINTS.replace("edgecheck_fakenpu.energy:EnergyCheck", "edgecheck_fakenpu.missing:EnergyCheck"))
    spec_project(SPEC % "100")
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*targets.host.budgets.energy_mj: unknown key*check plugins that failed to load: "
                                 "energy: its plugin edgecheck_fakenpu.missing:EnergyCheck failed to import*"])


def test_a_plugin_that_claims_a_built_in_budget_is_refused_aloud(pytester, spec_project, installed):
    """Entry points load in name order, and 'greedy' comes before 'size': edgecheck's own kinds still go first."""
    (installed / "edgecheck_fakenpu-0.1.dist-info" / "entry_points.txt").write_text(
        ENTRY_POINTS + "greedy = edgecheck_fakenpu.energy:GreedyCheck\n")
    spec_project(SPEC.replace("energy_mj: %s", "size_mb: 1"))
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*host-fakenpu-fnpu-compile-size PASSED*",
                                 "*PluginWarning: edgecheck check kind 'greedy' is not installed: its budget field "
                                 "'size_mb' is already the 'size' check's*"])


def test_a_device_target_says_where_a_plugin_figure_can_come_from(pytester, spec_project, installed):
    """energy_mj is a plain number (no source: to accept a stand-in): the skip says the device must measure it."""
    spec_project((SPEC % "100").replace("  host:\n    backends: [fakenpu]", "  rk3588:\n    backends: [fakenpu]"))
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*cannot judge rk3588 energy here: no rk3588 to measure on*; energy_mj is judged "
                                 "only on a figure measured on the device*"])
    assert "source: host to energy_mj" not in result.stdout.str()


def test_a_plugin_check_keeps_and_compares_its_own_baseline_figures(pytester, spec_project, installed):
    spec_project(SPEC % "100")
    saved = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "--edge-save-baseline=main")
    saved.assert_outcomes(passed=2)
    stored = json.loads((pytester.path / ".edgecheck" / "baselines" / "main.json").read_text())
    energy = next(v for k, v in stored["records"].items() if k.endswith("-energy"))
    assert set(energy) == {"energy_mj"}  # what EnergyCheck.baseline_figures keeps, not every figure
    compared = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "--edge-baseline=main",
                                             "--junitxml=r.xml")
    compared.assert_outcomes(passed=2)
    notes = junit_properties(pytester.path / "r.xml")["host-fakenpu-fnpu-compile-energy"]
    assert any(v.startswith("energy ") and "against baseline 'main'" in v for k, v in notes.items()
               if k.startswith("edge.note."))


def test_a_check_that_judges_nothing_never_passes(pytester, spec_project):
    """A kind whose run returns figures but holds none to its budget (a plug-in's bug) fails, saying so."""
    pytester.makeconftest("""
        from pydantic import Field

        from edgecheck.checks.base import BudgetField, Check, register_check
        from edgecheck.checks.result import CheckResult, Measurement

        @register_check
        class Idle(Check):
            name = "idle"
            budgets = {"idle_max": BudgetField(float | None, Field(None, description="Never looked at."))}

            def run(self, planned, context):
                result = CheckResult("idle")
                result.measurements.append(Measurement("idle.value", 1.0))  # measured, not judged
                return result
    """)
    spec_project(SPEC.replace("backends: [fakenpu]", "backends: [onnxruntime]").replace("compress: [fnpu-compile]\n", "")
                 .replace("energy_mj: %s", "idle_max: 5"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the idle check judged no figure against its budget (1 figures measured, none "
                                 "bounded): nothing to pass*"])
