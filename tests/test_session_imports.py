"""Validating the options (all an xdist controller does with edgecheck's session before it starts its workers)
imports no runtime machinery: the cache, the executor and the planner load where a spec is planned."""

import subprocess
import sys


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
