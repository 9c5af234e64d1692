"""Compile a tree's edgecheck to bytecode before timing it, as `pip install` does for a wheel.

Without it, where $PYTHONDONTWRITEBYTECODE is set (this project's CI machines set it) or the tree was never
imported, every edgecheck process of a timed run would compile its modules from source, which the bare
script's installed packages (numpy, onnxruntime) never do.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_edgecheck(tree: Path) -> str:
    """Write `tree`/edgecheck's __pycache__ (quietly); a line saying so for the benchmark's header."""
    ok = compileall.compile_dir(str(tree / "edgecheck"), quiet=2)
    return f"edgecheck's bytecode compiled in {tree} ({'ok' if ok else 'some modules failed to compile'})"
