"""The layers hold: `lint-imports` (import-linter, with the contracts in pyproject.toml) passes on
the package, and fails, naming the contract, on a copy of it with one wrong import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[dev]' brings it)")

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """The real command, from this interpreter's environment, on `root`'s package and pyproject.toml."""
    command = Path(sys.executable).parent / "lint-imports"
    if not command.is_file():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is installed but its lint-imports command is not on the PATH")
        command = Path(found)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(command), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_every_import_contract():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 broken." in run.stdout, run.stdout


@pytest.mark.parametrize(("module", "wrong_import", "contract", "named"), [
    ("checks/size.py", "import edgecheck.plugin", "edgecheck's layers, top to bottom",
     ["edgecheck.checks.size -> edgecheck.plugin"]),
    ("worker/client.py", "import edgecheck.session", "edgecheck's layers, top to bottom",
     ["edgecheck.worker.client -> edgecheck.session"]),
    ("plan.py", "import edgecheck.vendors.onnxruntime.backend", "the core never imports a vendor",
     ["edgecheck.plan -> edgecheck.vendors.onnxruntime.backend"]),
    ("vendors/tflite/backend.py", "import edgecheck.vendors.rknn.backend", "vendors never import each other",
     ["edgecheck.vendors.tflite.backend -> edgecheck.vendors.rknn.backend"]),
    ("npzfile.py", "import edgecheck.leftovers", "no import cycles between the modules of one package",
     [".npzfile", ".leftovers"]),  # which of the cycle's two imports it names is its choice
])
def test_a_wrong_import_breaks_the_contract_that_forbids_it(tmp_path, module, wrong_import, contract, named):
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "edgecheck", copy / "edgecheck", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    if module == "npzfile.py":  # a cycle needs both directions: leftovers imports npzfile too
        leftovers = copy / "edgecheck" / "leftovers.py"
        leftovers.write_text(leftovers.read_text() + "\nimport edgecheck.npzfile  # noqa: E402\n")
    target = copy / "edgecheck" / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # noqa: E402\n")
    run = lint_imports(copy)
    assert run.returncode != 0, run.stdout + run.stderr
    broken = run.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, run.stdout
    assert all(text in broken for text in named), run.stdout
