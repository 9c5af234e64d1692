"""Check kinds: the Check contract and registry (base.py), the built-in kinds, and their judging —
measured outputs and figures in, judged measurements out."""

from edgecheck.checks.base import BudgetField, Check, CheckContext, check_names, get_check, register_check
from edgecheck.checks.parity import OutputParity, compare_output, compare_outputs
from edgecheck.checks.result import CheckResult, Measurement

__all__ = ["BudgetField", "Check", "CheckContext", "CheckResult", "Measurement", "OutputParity", "check_names",
           "compare_output", "compare_outputs", "get_check", "register_check"]
