"""Check kinds: the Check contract and registry (base.py), the built-in kinds, and their judging —
measured outputs and figures in, judged measurements out.

Importing this package imports nothing: result.py is plain data that the plugin's report hooks read in
every run, so the names below load when first asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BudgetField": "edgecheck.checks.base", "Check": "edgecheck.checks.base", "CheckContext": "edgecheck.checks.base",
    "check_names": "edgecheck.checks.base", "get_check": "edgecheck.checks.base",
    "register_check": "edgecheck.checks.base", "CheckResult": "edgecheck.checks.result",
    "Measurement": "edgecheck.checks.result", "OutputParity": "edgecheck.checks.parity",
    "compare_output": "edgecheck.checks.parity", "compare_outputs": "edgecheck.checks.parity",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
