"""A run's results as data: one record per edgecheck item, and the JSON document `--edge-results` writes.

A record is what every report reads (the terminal table, baselines, `--edge-suggest`, the
pytest-benchmark export): the item's identity, its outcome, the skip or failure message, and the
check's result as `CheckResult.to_dict()` wrote it. It travels from an xdist worker to the
controller as an attribute of the TestReport (pytest serialises JSON-able attributes), so no
report parses another's text.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecheck.checks.result import CheckResult

RESULTS_FORMAT = 1
RECORD_ATTRIBUTE = "edgecheck_record"  # the TestReport attribute that carries an item's record
IDENTITY = ("spec", "spec_name", "target", "backend", "recipe", "check")
BROKEN_SPEC = "spec"  # the check of the record of a spec file that did not load (target, backend, recipe empty)
OUTCOMES = ("passed", "failed", "skipped")

Record = dict[str, Any]


def make_record(*, spec: str, spec_name: str, target: str, backend: str, recipe: str, check: str,
                target_is_host: bool, outcome: str, reason: str, result: CheckResult | None) -> Record:
    """One item's record: who it is, how it ended, why, and what its check found (None if it found nothing)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    return {"spec": spec, "spec_name": spec_name, "target": target, "backend": backend, "recipe": recipe,
            "check": check, "target_is_host": bool(target_is_host), "outcome": outcome, "reason": reason,
            "result": result.to_dict() if result is not None else None}


def reason_of(report: Any) -> str:
    """The skip or failure message of a pytest TestReport, whole; empty when it passed."""
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longreprtext)


def record_result(record: Mapping[str, Any]) -> CheckResult | None:
    """The check's result of a record, as an object (its verdict, headline and breaches computed again)."""
    result = record.get("result")
    return CheckResult.from_dict(result) if isinstance(result, dict) else None


def item_id(record: Mapping[str, Any]) -> str:
    """The test id of the record's item: target-backend-recipe-check (as the plan names it)."""
    return "-".join(str(record[k]) for k in ("target", "backend", "recipe", "check"))


def ran(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of items whose check produced a result (not skipped, not failed before judging)."""
    return [r for r in records if isinstance(r.get("result"), dict) and r.get("outcome") != "skipped"]


def facts(record: Mapping[str, Any]) -> dict[str, str]:
    result = record.get("result")
    return dict(result.get("facts", {})) if isinstance(result, dict) else {}


def run_environment(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """What the figures depend on, from the items' own facts (the first one that says)."""
    environment = {"python": platform.python_version()}
    for record in records:
        # the runtime and threads differ per item: each record's own figures are what is compared
        found = facts(record)
        for key, name in (("env.machine", "machine"), ("host", "host"), ("env.governor", "governor")):
            if key in found:
                environment.setdefault(name, found[key])
    return environment


def results_document(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's JSON document: format version, edgecheck's version, when, on what, every record."""
    from edgecheck import __version__

    records = [dict(r) for r in records]
    return {
        "edgecheck_results": RESULTS_FORMAT,
        "edgecheck": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": run_environment(records),
        "records": records,
    }


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable where the platform allows it (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible everywhere (Windows); the file itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file atomically (a temp file in the same folder, fsynced, then os.replace): a reader sees the
    old file or the new one, never half, and parallel runs never collide. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides the mode
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def read_results_records(results: Path) -> list[dict[str, Any]]:
    """The records of a results file `--edge-results` wrote; ValueError saying what is wrong with it."""
    return read_results_document(results)["records"]


def read_results_document(results: Path) -> dict[str, Any]:
    """The whole results document (its version, when, on what, and the records), checked as
    `read_results_records` checks it: for a report that shows the run's metadata too."""
    try:
        text = results.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"is not JSON ({exc})") from None
    if not isinstance(document, dict) or "edgecheck_results" not in document:
        raise ValueError("is not a results file written by --edge-results (no 'edgecheck_results' format field)")
    if document["edgecheck_results"] != RESULTS_FORMAT:
        raise ValueError(f"is results format {document['edgecheck_results']!r}; this edgecheck reads format "
                         f"{RESULTS_FORMAT}")
    records = document.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) and "outcome" in r for r in records):
        raise ValueError("holds no list of records (each with its 'outcome')")
    return document


def write_results(path: Path, document: Mapping[str, Any]) -> None:
    """Write the results document atomically."""
    text = json.dumps(document, indent=1, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"
    write_atomically(path, text.encode("utf-8"))


_NUMBER: dict[str, Any] = {"oneOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}],
                           "description": "a float; NaN and infinities as the strings nan, inf, -inf"}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_MEASUREMENT: dict[str, Any] = {
    "type": "object",
    "description": "One figure, its budget and how it was judged (Measurement.to_dict)",
    "required": ["name", "value", "unit", "budget", "bound", "budget_text", "interval", "interval_kind",
                 "cannot_judge", "verdict", "margin"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "value": _NUMBER,
        "unit": {"type": "string"},
        "budget": {"oneOf": [{"type": "null"}, _NUMBER]},
        "bound": {"enum": [None, "max", "min"], "description": "max: at or below the budget; min: at or above"},
        "budget_text": {"type": "string", "description": "the budget as the spec said it, e.g. 1%"},
        "interval": {"oneOf": [{"type": "null"}, {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}],
                     "description": "the value's confidence interval or an estimate's stated range"},
        "interval_kind": {"type": "string"},
        "cannot_judge": {"type": "string", "description": "why the figure cannot be held to its budget"},
        "verdict": {"enum": ["pass", "fail", "inconclusive"]},
        "margin": {"oneOf": [{"type": "null"}, _NUMBER], "description": "headroom: positive passes"},
    },
}
_RESULT: dict[str, Any] = {
    "type": "object",
    "description": "What one check measured and how it was judged (CheckResult.to_dict)",
    "required": ["check", "verdict", "measurements", "problems", "notes", "facts", "warnings", "doubts"],
    "additionalProperties": False,
    "properties": {
        "check": {"type": "string"},
        "verdict": {"enum": ["pass", "fail", "inconclusive"]},
        "measurements": {"type": "array", "items": _MEASUREMENT},
        "problems": _STRINGS,
        "notes": _STRINGS,
        "facts": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "where and how it was measured"},
        "warnings": _STRINGS,
        "doubts": _STRINGS,
    },
}
_RECORD: dict[str, Any] = {
    "type": "object",
    "description": "One edgecheck test item",
    "required": [*IDENTITY, "target_is_host", "outcome", "reason", "result"],
    "additionalProperties": False,
    "properties": {
        **{key: {"type": "string"} for key in IDENTITY},
        "target_is_host": {"type": "boolean", "description": "the target is the machine the run was on"},
        "outcome": {"enum": list(OUTCOMES)},
        "reason": {"type": "string", "description": "the skip or failure message, whole; empty when it passed"},
        "result": {"oneOf": [{"type": "null"}, _RESULT],
                   "description": "null when the item never produced a result (skipped, or failed before judging)"},
    },
}
RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edgecheck results",
    "description": "The results of one edgecheck run, as --edge-results writes them",
    "type": "object",
    "required": ["edgecheck_results", "edgecheck", "created", "environment", "records"],
    "additionalProperties": False,
    "properties": {
        "edgecheck_results": {"const": RESULTS_FORMAT, "description": "the format version of this document"},
        "edgecheck": {"type": "string", "description": "the edgecheck version that wrote it"},
        "created": {"type": "string", "format": "date-time"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "records": {"type": "array", "items": _RECORD},
    },
}
