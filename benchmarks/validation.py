"""The summary both estimate benchmarks print over their validation rows (published figures never fitted on)."""

from __future__ import annotations

import statistics


def summary(validation: list[tuple[float, bool, str]]) -> str:
    """`validation`: per row (absolute relative error, inside the stated range, verdict of a budget at the published
    figure). Issue 17's targets read off it: median error, coverage of the range, and no 'pass' at the figure."""
    errors = [e for e, _, _ in validation]
    covered = sum(1 for _, inside, _ in validation if inside)
    passes = sum(1 for *_, verdict in validation if verdict == "pass")
    return (f"validation ({len(validation)} rows never fitted on): median absolute error {statistics.median(errors):.1%}, "
            f"largest {max(errors):.1%}; coverage of the stated range {covered}/{len(validation)} = "
            f"{covered / len(validation):.0%}; 'pass' for a budget at the published figure: {passes}")
