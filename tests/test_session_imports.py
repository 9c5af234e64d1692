"""Validating the options (all an xdist controller does with edgecheck's session before it starts its workers)
imports no runtime machinery: the cache, the executor and the planner load where a spec is planned."""

import subprocess
import sys
from pathlib import Path


def test_session_module_imports_no_runtime_machinery():
    code = ("import sys, edgecheck.session; "
            "print(sorted(m for m in ('edgecheck.cache', 'edgecheck.execute', 'edgecheck.plan', "
            "'edgecheck.measure.runs', 'edgecheck.compress') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_options_validate_without_the_cache_module(pytester):
    pytester.makeconftest("""
import sys
def pytest_collection_finish(session):
    print("LOADED", sorted(m for m in ("edgecheck.cache", "edgecheck.execute") if m in sys.modules))
""")
    result = pytester.runpytest_subprocess("--collect-only", f"--edge-cache-dir={pytester.path / 'cache'}",
                                           "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["LOADED []"])


def test_edgecheck_modules_load_as_python_loads_them_not_through_assert_rewriting(pytester, monkeypatch):
    """pytest marks a pytest11 plugin's whole package for assert rewriting; where it cannot keep the rewritten
    bytecode ($PYTHONDONTWRITEBYTECODE) that is a parse and compile of every module in every run. edgecheck's
    modules after its plugin load from their own bytecode; a test file still has its asserts rewritten. (edgecheck on
    PYTHONPATH, as from a wheel: an editable install's own finder is out of the hook's sight.)"""
    import os

    import edgecheck

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    root = str(Path(edgecheck.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    pytester.makeconftest("""
import sys

def pytest_unconfigure(config):
    loaders = {name: type(sys.modules[name].__loader__).__name__ for name in
               ("edgecheck.session", "edgecheck.spec.schema", "edgecheck.devices") if name in sys.modules}
    print("LOADERS", sorted(set(loaders.values())), len(loaders), sys.modules["edgecheck"].__file__)
""")
    pytester.makepyfile(test_plain="def test_rewritten():\n    x = 1\n    assert x == 2\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", f"--edge-cache-dir={pytester.path / 'c'}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    said = [line for line in result.stdout.lines if line.startswith("LOADERS ")]
    assert said == [f"LOADERS ['SourceFileLoader'] 3 {root}/edgecheck/__init__.py"], said
