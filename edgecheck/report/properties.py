"""Check results as (name, value) properties: what reaches the JUnit XML and the summary.

Names come partly from the model (output names), which can hold anything; pytest escapes
property values but not names, so both are made XML-safe here.
"""

from __future__ import annotations

import math
import re

from edgecheck.checks.result import CheckResult, fmt

PREFIX = "edge."
# Characters XML 1.0 forbids, plus line breaks that would break a one-line property.
_INVALID_XML = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    return _INVALID_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def number(value: float) -> str:
    """Full precision for machines (the summary table rounds; the XML does not)."""
    if math.isnan(value) or math.isinf(value):
        return fmt(value)
    return f"{value:.9g}"


def identity_properties(spec: str, name: str, target: str, backend: str, recipe: str,
                        check: str) -> list[tuple[str, str]]:
    pairs = {"spec": spec, "spec_name": name, "target": target, "backend": backend, "recipe": recipe,
             "check": check}
    return [(xml_safe(PREFIX + k), xml_safe(v)) for k, v in pairs.items()]


def result_properties(result: CheckResult) -> list[tuple[str, str]]:
    """Every measured figure, its budget, where it was measured, and the verdict."""
    pairs: list[tuple[str, str]] = [(f"{key}", value) for key, value in result.facts.items()]
    for m in result.measurements:
        pairs.append((m.name, number(m.value)))
        if m.unit:
            pairs.append((f"{m.name}.unit", m.unit))
        if m.judged:
            pairs.append((f"{m.name}.budget", m.budget_desc()))
        if m.interval is not None:  # a confidence interval, or an estimate's stated error range
            kind = "ci" if m.interval_kind == "95% CI" else "range"
            pairs.append((f"{m.name}.{kind}_low", number(m.interval[0])))
            pairs.append((f"{m.name}.{kind}_high", number(m.interval[1])))
    headline = result.headline()
    if headline is not None:
        pairs.append(("summary", f"{headline.name} = {headline.value_text()}"))
        pairs.append(("summary.budget", headline.budget_desc()))
    for index, problem in enumerate(result.problems):
        pairs.append((f"problem.{index}", problem))
    for index, note in enumerate(result.notes):
        pairs.append((f"note.{index}", note))
    pairs.append(("verdict", result.verdict))
    return [(xml_safe(PREFIX + name), xml_safe(value)) for name, value in pairs]
