"""Records of edgecheck items as a run makes them (edgecheck.results), built from figures for the report tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgecheck.checks.result import CheckResult, Measurement, number_to_json
from edgecheck.results import IDENTITY, make_record


def record(check: str, recipe: str, measurements: Iterable[Measurement], facts: Mapping[str, str] | None = None, *,
           spec: str = "specs/digits.yaml", spec_name: str = "digits-cnn", target: str = "host",
           backend: str = "onnxruntime", outcome: str = "passed", problems: Iterable[str] = ()) -> dict[str, Any]:
    """The record of an item that ran; its target is the host exactly when it is named host."""
    result = CheckResult(check, list(measurements), list(problems), facts=dict(facts or {}))
    return make_record(spec=spec, spec_name=spec_name, target=target, backend=backend, recipe=recipe, check=check,
                       target_is_host=target == "host", outcome=outcome, reason="", result=result)


def variant(item: Mapping[str, Any], **changes: str | None) -> dict[str, Any]:
    """The record with changes: an identity name sets it (target also sets target_is_host); a measurement's
    name ('parity__logits__cosine' for parity.logits.cosine) sets its value; any other name sets a fact (None leaves it out)."""
    changed: dict[str, Any] = {**item, "result": {**item["result"], "facts": dict(item["result"]["facts"]),
                                                  "measurements": [dict(m) for m in item["result"]["measurements"]]}}
    for key, value in changes.items():
        name = key.replace("__", ".")
        if name in IDENTITY:
            changed[name] = value
            if name == "target":
                changed["target_is_host"] = value == "host"
            continue
        measured = [m for m in changed["result"]["measurements"] if m["name"] == name]
        if measured:
            measured[0]["value"] = number_to_json(float(value))
        elif value is None:  # the fact left out
            changed["result"]["facts"].pop(name, None)
        else:
            changed["result"]["facts"][name] = value
    return changed


def without(item: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The record without the measurements whose names start with `prefix`."""
    result = {**item["result"], "measurements": [m for m in item["result"]["measurements"]
                                                 if not m["name"].startswith(prefix)]}
    return {**item, "result": result}


def with_measurements(item: Mapping[str, Any], *measurements: Measurement) -> dict[str, Any]:
    """The record with more measurements."""
    result = {**item["result"], "measurements": [*item["result"]["measurements"],
                                                 *(m.to_dict() for m in measurements)]}
    return {**item, "result": result}
