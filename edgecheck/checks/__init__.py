"""Checks: measured outputs and figures in, judged measurements out (no running, no I/O)."""

from edgecheck.checks.parity import OutputParity, compare_output, compare_outputs
from edgecheck.checks.result import CheckResult, Measurement

CHECKS = ("accuracy", "parity", "size", "latency", "memory", "ops")
__all__ = ["CHECKS", "CheckResult", "Measurement", "OutputParity", "compare_output", "compare_outputs"]
