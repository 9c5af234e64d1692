"""Third-party backends arrive through the `edgecheck.backends` entry point group, in a real
subprocess whose sys.path holds an installed-looking distribution (dist-info + entry_points.txt)."""

from __future__ import annotations

import os
import textwrap

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
targets:
  host:
    backends: [onnxruntime, mynpu, broken]
    budgets:
      parity: {atol: 1.0e-5}
"""


def _install_fake_distribution(pytester) -> None:
    site = pytester.path / "site"
    (site / "mynpu_plugin").mkdir(parents=True)
    (site / "mynpu_plugin" / "__init__.py").write_text(textwrap.dedent("""
        from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend

        class MyNpuBackend(OnnxRuntimeBackend):
            name = "mynpu"

            def facts(self):
                return {"version": "0.1", "provider": "fake NPU (ONNX Runtime underneath)"}
    """))
    dist = site / "mynpu_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mynpu-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[edgecheck.backends]\nmynpu = mynpu_plugin:MyNpuBackend\nbroken = mynpu_plugin.missing:Nothing\n")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


def test_entry_point_backend_runs_and_a_broken_one_skips_with_its_import_error(pytester, spec_project, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # restored after the test
    _install_fake_distribution(pytester)
    spec_project(SPEC)
    result = pytester.runpytest_subprocess("specs", "-rs", "-v", "--junitxml=ep.xml")
    result.assert_outcomes(passed=1, skipped=1)  # none on onnxruntime: the reference, not compared with itself
    result.stdout.fnmatch_lines([
        "*host-mynpu-none-parity PASSED*",
        "*broken cannot run here: its plugin mynpu_plugin.missing:Nothing failed to import: "
        "ModuleNotFoundError*",
    ])
    assert "fake NPU" in (pytester.path / "ep.xml").read_text()


def test_a_distribution_installed_meanwhile_is_seen_though_the_scan_is_kept(tmp_path, monkeypatch):
    """The installed distributions are scanned once per state of sys.path (a session looks its groups up a dozen
    times); a distribution added to a folder on the path, or a folder added, is a new state."""
    from edgecheck import entrypoints

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert "late" not in {e.name for e in entrypoints._entry_points("edgecheck.backends")}
    first = entrypoints._SCANNED
    assert entrypoints._entry_points("edgecheck.backends") is not None and entrypoints._SCANNED is first  # kept
    dist = site / "late_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: late-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgecheck.backends]\nlate = late_plugin:Backend\n")
    import os

    os.utime(site, ns=(os.stat(site).st_atime_ns, os.stat(site).st_mtime_ns + 10**9))  # (a coarse clock's same tick)
    assert "late" in {e.name for e in entrypoints._entry_points("edgecheck.backends")}
